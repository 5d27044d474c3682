"""Mask proposals: SAM building, backends, CLIP similarity, storage, the
resumable tool (tools/generate_proposals.py) and the LoadProposals
transform.

The tool runs on the toy dataset with the regions backend and with a tiny,
randomly initialised SAM whose state dict is saved to a temporary file (its
masks are meaningless but deterministic); the CLIP similarities use a tiny
CLIP given to the tool as a JSON ``--clip-arch`` plus a saved state dict.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from conftest import REPO, run_env
from mmwris.datasets.transforms.loading import decode_coco_segmentation
from mmwris.models.foundation import build_sam, build_sam_model
from mmwris.proposals import (ColourRegionProposalGenerator,
                              ProposalCLIPSimilarity, ProposalRunner,
                              ProposalSettingsError, decode_masks,
                              encode_masks, images_from_refs,
                              load_image_proposals, load_index,
                              proposal_crops)
from mmwris.proposals.storage import make_record, write_image_proposals
from mmwris.registry import DATASETS, TRANSFORMS

CONFIG = 'configs/tris/tris_clip-tiny_1xb32-3k_toyrefer-128x128.py'
TINY_CLIP = dict(
    embed_dim=64,
    vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=128),
    text_cfg=dict(context_length=20, vocab_size=49408, width=64, heads=2,
                  layers=2))
SAM_ARGS = ('--backend', 'sam', '--sam-arch', 'vit_tiny',
            '--points-per-side', '4', '--pred-iou-thresh', '0',
            '--stability-score-thresh', '0', '--box-nms-thresh', '1.0',
            '--sam-score', 'predicted_iou', '--top-n', '5',
            '--max-images', '12')


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """Tiny SAM and CLIP state dicts saved to files."""
    from mmwris.models.foundation import build_open_clip
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    torch.save(build_sam_model('vit_tiny').state_dict(), folder / 'sam.pth')
    torch.save(build_open_clip(TINY_CLIP).state_dict(), folder / 'clip.pth')
    return folder


def toy_gt(root):
    """image_id -> (COCO image, [GT masks]) and image_id -> sent_ids."""
    coco = json.loads((root / 'toyref' / 'instances.json').read_text())
    images = {img['id']: (img, []) for img in coco['images']}
    for ann in coco['annotations']:
        img, masks = images[ann['image_id']]
        masks.append(decode_coco_segmentation(
            ann['segmentation'], img['height'], img['width']))
    with open(root / 'toyref' / 'refs(synth).p', 'rb') as f:
        refs = pickle.load(f)
    sent_ids = {}
    for ref in refs:
        sent_ids.setdefault(ref['image_id'], set()).update(
            s['sent_id'] for s in ref['sentences'])
    return images, sent_ids


def tool(out, root, *extra):
    return [sys.executable, 'tools/generate_proposals.py', CONFIG, '--out',
            str(out), '--cfg-options',
            f'train_dataloader.dataset.data_root={root}', *extra]


def run_tool(cmd, ok=True):
    proc = subprocess.run(cmd, cwd=REPO, env=run_env(), capture_output=True,
                          text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def json_files(out):
    folder = out / 'proposals'
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix == '.json')


@pytest.fixture(scope='module')
def regions_out(toy_refer_root, tmp_path_factory):
    """The regions backend run by the tool on every toy image."""
    out = tmp_path_factory.mktemp('regions')
    run_tool(tool(out, toy_refer_root, '--backend', 'regions', '--no-clip'))
    return out


# ----------------------------------------------------------------- SAM ---
def test_sam_architectures(weights):
    from segment_anything import sam_model_registry
    tiny = build_sam_model('vit_tiny')
    assert 50_000 < sum(p.numel() for p in tiny.parameters()) < 120_000
    assert tiny.image_encoder.img_size == 128
    for arch in ('vit_b', 'vit_l'):
        with torch.device('meta'):
            ours = build_sam_model(arch).state_dict()
            official = sam_model_registry[arch]().state_dict()
        assert {k: v.shape for k, v in ours.items()} == \
            {k: v.shape for k, v in official.items()}, arch
    with pytest.raises(KeyError, match='vit_x'):
        build_sam_model('vit_x')


def test_build_sam_loads_strictly_and_names_wrong_keys(weights, tmp_path):
    path = weights / 'sam.pth'
    model = build_sam('vit_tiny', str(path))
    saved = torch.load(path, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    deeper = dict(base='vit_tiny', encoder_depth=2)
    with pytest.raises(RuntimeError) as error:
        build_sam(deeper, str(path))
    message = str(error.value)
    assert str(path) in message and 'Missing keys' in message
    assert 'image_encoder.blocks.1.attn.qkv.weight' in message
    wide = dict(base='vit_tiny', encoder_embed_dim=64)
    with pytest.raises(RuntimeError, match='shape mismatches'):
        build_sam(wide, str(path))
    with pytest.raises(FileNotFoundError, match='never'):
        build_sam('vit_tiny', str(tmp_path / 'absent.pth'))
    with pytest.raises(ValueError, match='required'):
        build_sam('vit_tiny', None)


# ------------------------------------------------------------ backends ---
def test_regions_backend_is_class_agnostic_and_sorted():
    image = np.full((60, 80, 3), 120, np.uint8)
    image[5:25, 5:25] = (220, 30, 30)        # square, fill ratio 1
    image[30:55, 40:75] = (30, 70, 220)      # rectangle, fill ratio 1
    cv2.circle(image, (60, 15), 9, (30, 170, 50), -1)   # ratio ~0.78
    image[50:52, 2:4] = (240, 210, 20)       # 4 pixels: below min_area
    generator = ColourRegionProposalGenerator()
    masks, scores = generator(image)
    assert masks.dtype == np.uint8 and masks.shape == (3, 60, 80)
    assert np.all(np.diff(scores) <= 0)
    square = np.zeros((60, 80), np.uint8)
    square[5:25, 5:25] = 1
    assert any(np.array_equal(mask, square) for mask in masks)
    assert masks[-1, 15, 60] == 1 and 0.7 < scores[-1] < 0.85
    with pytest.raises(ValueError, match='RGB uint8'):
        generator(image.astype(np.float32))


def test_regions_tool_finds_the_toy_shapes(regions_out, toy_refer_root):
    images, _ = toy_gt(toy_refer_root)
    summary = json.loads((regions_out / 'summary.json').read_text())
    assert summary['written'] == len(images) and summary['failed'] == 0
    index = load_index(str(regions_out))
    assert index['settings']['backend']['type'] == \
        'ColourRegionProposalGenerator'
    assert index['settings']['clip'] is None
    assert list(index['images']) == [str(i) for i in sorted(images)]
    for image_id, (img, gt_masks) in images.items():
        record = load_image_proposals(str(regions_out), image_id,
                                      decode=True)
        masks = record['mask_array']
        assert masks.shape[1:] == (img['height'], img['width'])
        assert index['images'][str(image_id)]['count'] == len(masks) <= 40
        assert record['clip_sim'] is None
        assert record['scores'] == sorted(record['scores'], reverse=True)
        for gt in gt_masks:
            inter = (masks & gt).sum((1, 2))
            union = (masks | gt).sum((1, 2))
            assert (inter / union).max() > 0.8, image_id


# ---------------------------------------------------------------- CLIP ---
def test_proposal_crops_mask_box_and_square_pad():
    image = torch.rand(3, 20, 30)
    masks = torch.zeros(2, 20, 30)
    masks[0, 2:6, 10:18] = 1
    masks[0, 3, 10] = 0
    fill = torch.tensor([0.1, 0.2, 0.3])
    crops = proposal_crops(image, masks, fill, (8, 8))
    assert crops.shape == (2, 3, 8, 8)
    # A 4x8 box padded to 8x8: rows 0-1 and 6-7 are fill.
    assert torch.allclose(crops[0, :, :2], fill.view(3, 1, 1).expand(3, 2, 8))
    assert torch.allclose(crops[0, :, 2:6, 1:], image[:, 2:6, 11:18])
    assert torch.allclose(crops[0, :, 3, 0], fill)
    assert torch.allclose(crops[1], fill.view(3, 1, 1).expand(3, 8, 8))


class ColourScorer:
    """Image embedding = mean colour of the non-fill pixels; text embedding
    = the colour it names."""
    COLOURS = {'red': [1., 0, 0], 'green': [0, 1., 0], 'blue': [0, 0, 1.]}

    def __init__(self):
        self.mean = torch.full((1, 3, 1, 1), 0.5)
        self.image_size = (16, 16)

    def encode_image(self, images):
        centred = (images - self.mean).clamp(min=0)
        return torch.nn.functional.normalize(centred.sum((2, 3)), dim=-1)

    def encode_text(self, texts):
        return torch.tensor([self.COLOURS[t.split()[-1]] for t in texts])


def test_clip_similarity_matches_colours():
    image = np.full((30, 40, 3), 128, np.uint8)
    image[2:12, 2:12] = (255, 0, 0)
    image[15:28, 20:38] = (0, 0, 255)
    masks = np.zeros((2, 30, 40), np.uint8)
    masks[0, 2:12, 2:12] = 1
    masks[1, 15:28, 20:38] = 1
    texts = ['the red', 'a blue', 'the green']
    for batch_size in (1, 32):
        sims = ProposalCLIPSimilarity(ColourScorer(), batch_size)(
            image, masks, texts)
        assert sims.shape == (2, 3)
        assert np.allclose(sims, [[1, 0, 0], [0, 1, 0]], atol=1e-5)


# ------------------------------------------------- tool: SAM + resume ---
def test_sam_tool_with_clip_resumes_after_sigkill(toy_refer_root, weights,
                                                  tmp_path):
    clip_args = ('--sam-checkpoint', str(weights / 'sam.pth'),
                 '--clip-arch', json.dumps(TINY_CLIP), '--clip-weights',
                 str(weights / 'clip.pth'), '--clip-batch-size', '4')
    reference = tmp_path / 'reference'
    run_tool(tool(reference, toy_refer_root, *SAM_ARGS, *clip_args))
    images, sent_ids = toy_gt(toy_refer_root)
    names = json_files(reference)
    assert names == sorted(f'{i}.json' for i in sorted(images)[:12])
    for name in names:
        record = json.loads((reference / 'proposals' / name).read_text())
        img = images[record['image_id']][0]
        assert len(record['masks']) == 5            # top-5 of 48 masks
        masks = decode_masks(record['masks'], img['height'], img['width'])
        assert masks.shape == (5, img['height'], img['width'])
        assert record['scores'] == sorted(record['scores'], reverse=True)
        assert set(record['clip_sim']) == \
            {str(s) for s in sent_ids[record['image_id']]}
        for sims in record['clip_sim'].values():
            assert len(sims) == 5 and all(-1 <= s <= 1 for s in sims)
    settings = load_index(str(reference))['settings']
    assert settings['backend']['arch'] == 'vit_tiny'
    assert settings['clip']['arch']['embed_dim'] == 64

    out = tmp_path / 'killed'
    proc = subprocess.Popen(
        tool(out, toy_refer_root, *SAM_ARGS, *clip_args), cwd=REPO,
        env=run_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(json_files(out)) >= 2:
            break
        time.sleep(0.005)
    assert proc.poll() is None, 'the tool finished before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(json_files(out))
    assert 2 <= done_before < len(names)
    (out / 'proposals' / '1.json.tmp-99999').write_text('{"half": ')

    run_tool(tool(out, toy_refer_root, *SAM_ARGS, *clip_args))
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['skipped'] >= done_before
    assert summary['skipped'] + summary['written'] == len(names)
    assert not [p for p in (out / 'proposals').iterdir()
                if '.tmp-' in p.name]
    assert json_files(out) == names
    for name in names:
        assert (out / 'proposals' / name).read_bytes() == \
            (reference / 'proposals' / name).read_bytes(), name
    assert (out / 'index.json').read_bytes() == \
        (reference / 'index.json').read_bytes()


# ---------------------------------------------------- runner (in-process) ---
def toy_entries(root, count):
    from mmwris.datasets.refcoco import load_instances, load_refs
    refs = load_refs(str(root / 'toyref' / 'refs(synth).p'))
    images, _ = load_instances(str(root / 'toyref' / 'instances.json'))
    entries = images_from_refs(refs, images, str(root / 'images'),
                               splits=['val'])
    assert {len(e['sentences']) for e in entries} != {0}
    return entries[:count]


def test_runner_settings_failures_and_corrupt_files(toy_refer_root,
                                                    tmp_path):
    entries = toy_entries(toy_refer_root, 4)
    out = str(tmp_path / 'out')
    summary = ProposalRunner(ColourRegionProposalGenerator(), out, entries,
                             top_n=2).run()
    assert summary['written'] == 4 and summary['mean_proposals'] <= 2
    with pytest.raises(ProposalSettingsError, match='other settings'):
        ProposalRunner(ColourRegionProposalGenerator(), out, entries,
                       top_n=3).run()

    first = entries[0]['image_id']
    path = tmp_path / 'out' / 'proposals' / f'{first}.json'
    path.write_text('{"image_id": ')
    with pytest.raises(ValueError, match=f'{first}.json is corrupt'):
        load_image_proposals(out, first)
    with pytest.raises(FileNotFoundError, match='image_id=123456'):
        load_image_proposals(out, 123456)

    broken = dict(entries[1], img_path=str(tmp_path / 'missing.png'))
    os.remove(tmp_path / 'out' / 'proposals' / f'{broken["image_id"]}.json')
    summary = ProposalRunner(ColourRegionProposalGenerator(), out,
                             [entries[0], broken, *entries[2:]],
                             top_n=2).run()
    assert summary['written'] == 1 and summary['skipped'] == 2
    assert summary['failed'] == 1 and summary['present'] == 3
    assert 'missing.png' in summary['failures'][str(broken['image_id'])]
    assert len(load_image_proposals(out, first)['masks']) <= 2

    summary = ProposalRunner(ColourRegionProposalGenerator(), out, entries,
                             top_n=3, overwrite=True).run()
    assert summary['written'] == 4
    assert load_index(out)['settings']['top_n'] == 3


def test_runner_shards_cover_every_image(toy_refer_root, tmp_path):
    entries = toy_entries(toy_refer_root, 5)
    out = str(tmp_path / 'sharded')
    for i in range(2):
        ProposalRunner(ColourRegionProposalGenerator(), out, entries,
                       shard=(i, 2)).run()
    index = load_index(out)
    assert list(index['images']) == [str(e['image_id']) for e in entries]


# ------------------------------------------------------------ transform ---
def write_fake_proposals(folder, image_id=7, height=30, width=40):
    masks = np.zeros((3, height, width), np.uint8)
    masks[0, :10, :10] = 1
    masks[1, 10:25, 5:35] = 1
    masks[2, :, 30:] = 1
    record = make_record(image_id, 'x.png', masks, [0.9, 0.5, 0.25],
                         {'11': [0.3, 0.2, 0.1], '12': [0.0, 0.1, 0.2]})
    write_image_proposals(str(folder), record)
    return masks


def test_encode_decode_roundtrip():
    masks = (np.random.default_rng(0).random((4, 9, 13)) > 0.5).astype(
        np.uint8)
    rles = encode_masks(masks)
    assert all(isinstance(r['counts'], str) for r in rles)
    assert np.array_equal(decode_masks(rles, 9, 13), masks)
    with pytest.raises(ValueError, match='expected'):
        decode_masks(rles, 13, 9, source='f.json')


def test_load_proposals_pads_truncates_and_packs(tmp_path):
    (tmp_path / 'proposals').mkdir()
    masks = write_fake_proposals(tmp_path)
    base = dict(image_id=7, height=30, width=40, sent_id=12,
                img=np.zeros((30, 40, 3), np.uint8), text='the thing',
                img_shape=(30, 40), ori_shape=(30, 40))

    padded = TRANSFORMS.build(dict(type='LoadProposals',
                                   proposal_dir=str(tmp_path),
                                   num_proposals=5))(dict(base))
    assert padded['gt_proposals'].shape == (30, 40, 5)
    assert padded['gt_proposals'].dtype == np.uint8
    assert np.array_equal(padded['gt_proposals'][..., :3],
                          masks.transpose(1, 2, 0))
    assert not padded['gt_proposals'][..., 3:].any()
    assert padded['seg_fields'] == ['gt_proposals']
    assert padded['proposal_scores'] == [0.9, 0.5, 0.25, 0.0, 0.0]
    assert padded['proposal_clip_sim'] == [0.0, 0.1, 0.2, -1.0, -1.0]

    cut = TRANSFORMS.build(dict(type='LoadProposals',
                                proposal_dir=str(tmp_path), num_proposals=2,
                                with_clip_sim=False))(dict(base))
    assert cut['gt_proposals'].shape == (30, 40, 2)
    assert cut['proposal_scores'] == [0.9, 0.5]
    assert 'proposal_clip_sim' not in cut

    resize = TRANSFORMS.build(dict(type='Resize', scale=(20, 12),
                                   keep_ratio=False))
    flip = TRANSFORMS.build(dict(type='RandomFlipWithText', prob=1.0))
    pack = TRANSFORMS.build(dict(type='PackRISInputs'))
    for n in (5, 1):
        load = TRANSFORMS.build(dict(type='LoadProposals',
                                     proposal_dir=str(tmp_path),
                                     num_proposals=n))
        results = flip(resize(load(dict(base))))
        expected = cv2.resize(masks[0], (20, 12),
                              interpolation=cv2.INTER_NEAREST)[:, ::-1]
        packed = pack(results)['data_samples']
        assert isinstance(packed.gt_proposals, PixelData)
        assert packed.gt_proposals.data.shape == (n, 12, 20)
        assert np.array_equal(packed.gt_proposals.data[0].numpy(), expected)
        assert packed.proposal_scores[0] == 0.9
        assert len(packed.proposal_clip_sim) == n


def test_load_proposals_errors(tmp_path):
    (tmp_path / 'proposals').mkdir()
    write_fake_proposals(tmp_path)
    load = TRANSFORMS.build(dict(type='LoadProposals',
                                 proposal_dir=str(tmp_path)))
    with pytest.raises(KeyError, match='sent_id=99'):
        load(dict(image_id=7, height=30, width=40, sent_id=99))
    with pytest.raises(ValueError, match='size 30x40'):
        load(dict(image_id=7, height=40, width=30, sent_id=11))
    with pytest.raises(FileNotFoundError) as error:
        load(dict(image_id=8, height=30, width=40, sent_id=11))
    assert 'image_id=8' in str(error.value)
    assert str(tmp_path) in str(error.value)
    assert 'generate_proposals.py' in str(error.value)
    record = make_record(9, 'y.png', np.zeros((1, 5, 5), np.uint8), [1.0],
                         None)
    write_image_proposals(str(tmp_path), record)
    with pytest.raises(KeyError, match='--no-clip'):
        load(dict(image_id=9, height=5, width=5, sent_id=11))
    with pytest.raises(ValueError, match='num_proposals'):
        TRANSFORMS.build(dict(type='LoadProposals', proposal_dir='x',
                              num_proposals=513))


def test_dataset_pipeline_with_proposals(regions_out, toy_refer_root):
    crop = (64, 64)
    dataset = DATASETS.build(dict(
        type='RefCOCODataset', data_root=str(toy_refer_root),
        ann_file='toyref/instances.json', refs_file='toyref/refs(synth).p',
        data_prefix=dict(img_path='images'), split='val',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadRISAnnotations'),
            dict(type='LoadProposals', proposal_dir=str(regions_out),
                 num_proposals=6, with_clip_sim=False),
            dict(type='Resize', scale=crop, keep_ratio=False),
            dict(type='PackRISInputs'),
        ]))
    sample = dataset[0]['data_samples']
    proposals = sample.gt_proposals.data
    assert proposals.shape == (6, *crop)
    gt = sample.gt_sem_seg.data[0].bool()
    inter = (proposals.bool() & gt).sum((1, 2))
    union = (proposals.bool() | gt).sum((1, 2))
    assert (inter / union).max() > 0.7
    assert len(sample.proposal_scores) == 6
    assert os.path.isfile(regions_out / 'proposals' /
                          f'{sample.image_id}.json')


def load_proposal_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'generate_proposals', os.path.join(REPO, 'tools', 'generate_proposals.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_proposal_options_come_from_proposal_cfg_and_flags():
    """Config first: proposal_cfg, then the flags that were given."""
    import argparse

    from mmengine.config import Config
    gp = load_proposal_tool()
    cfg = Config.fromfile(os.path.join(
        REPO, 'configs/pcnet/pcnet_clip-r50_1xb48-15e_refcocog-umd-320x320.py'))
    parser_defaults = dict(
        backend=None, top_n=None, num_colours=None, sam_arch=None,
        sam_checkpoint=None, sam_score=None, no_clip=False, clip_arch=None,
        clip_weights=None, clip_batch_size=None, **{
            flag[2:].replace('-', '_'): None for flag, _ in gp.SAM_FLAGS})
    options = gp.proposal_options(cfg, argparse.Namespace(**parser_defaults))
    assert options['backend'] == 'sam' and options['top_n'] == 40
    assert options['sam']['arch'] == 'vit_h'
    assert options['sam']['points_per_side'] == 32  # a DEFAULTS value
    assert options['clip'] == dict(arch='ViT-B-32-quickgelu', weights=None,
                                   batch_size=32)
    flags = dict(parser_defaults, sam_checkpoint='sam.pth', top_n=7,
                 points_per_side=8, clip_weights='clip.pt')
    options = gp.proposal_options(cfg, argparse.Namespace(**flags))
    assert options['top_n'] == 7
    assert options['sam']['checkpoint'] == 'sam.pth'
    assert options['sam']['points_per_side'] == 8
    assert options['clip']['weights'] == 'clip.pt'
    assert options['clip']['arch'] == 'ViT-B-32-quickgelu'
    options = gp.proposal_options(
        cfg, argparse.Namespace(**dict(parser_defaults, no_clip=True)))
    assert options['clip'] is None
    toy = Config.fromfile(os.path.join(
        REPO, 'configs/pcnet/pcnet_clip-tiny_1xb32-3k_toyrefer-128x128.py'))
    options = gp.proposal_options(toy, argparse.Namespace(**parser_defaults))
    assert options['backend'] == 'regions' and options['clip'] is None
    options = gp.proposal_options(toy, argparse.Namespace(**dict(
        parser_defaults, backend='sam', clip_arch='RN50',
        clip_weights='w.pt')))
    assert options['backend'] == 'sam'
    assert options['clip'] == dict(arch='RN50', weights='w.pt', batch_size=32)


def test_proposal_tool_runs_from_the_config_alone(toy_refer_root, tmp_path):
    """The toy PCNet config's proposal_cfg (colour regions, no CLIP) needs
    no flags."""
    out = tmp_path / 'proposals'
    run_tool([sys.executable, 'tools/generate_proposals.py',
              'configs/pcnet/pcnet_clip-tiny_1xb32-3k_toyrefer-128x128.py',
              '--out', str(out), '--max-images', '3', '--cfg-options',
              f'train_dataloader.dataset.data_root={toy_refer_root}'])
    index = json.loads((out / 'index.json').read_text())
    assert len(index['images']) == 3
    assert index['settings']['clip'] is None
    assert 'Colour' in json.dumps(index['settings'])


@pytest.mark.parametrize('kept, channels', [(0, 1), (1, 1), (3, 5),
                                            (40, 40), (2, 40)])
def test_channels_last_masks_and_packing_keep_every_pixel(kept, channels):
    """cv2.merge / cv2.split layouts give the numpy transposes' arrays."""
    from mmwris.datasets.transforms import PackRISInputs
    from mmwris.datasets.transforms.proposals import channels_last_masks
    rng = np.random.default_rng(kept + channels)
    masks = (rng.random((kept, 7, 9)) > 0.5).astype(np.uint8)
    expected = np.zeros((7, 9, channels), np.uint8)
    expected[..., :kept] = masks.transpose(1, 2, 0)
    hwc = channels_last_masks(masks, channels)
    assert hwc.shape == expected.shape and hwc.flags.c_contiguous
    np.testing.assert_array_equal(hwc, expected)
    results = dict(img=np.zeros((7, 9, 3), np.uint8), text='a',
                   img_shape=(7, 9), ori_shape=(7, 9), gt_proposals=hwc)
    packed = PackRISInputs()(results)['data_samples'].gt_proposals.data
    np.testing.assert_array_equal(packed.numpy(),
                                  expected.transpose(2, 0, 1))
