"""PPT's data side: the class-level and caption sources, the multi-source
curriculum (dataset, sampler, hook) and the SAM embedding store (tool,
LoadSAMEmbedding, PackRISInputs)."""
import json
import os
import os.path as osp
import textwrap
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from pycocotools import mask as mask_utils
from torch.utils.data import DataLoader

from conftest import REPO
from mmwris.datasets.curriculum import (CurriculumDataset, CurriculumHook,
                                        CurriculumSampler, check_schedule)
from mmwris.registry import DATASETS, TRANSFORMS

TOOL = osp.join(REPO, 'tools', 'precompute_sam_embeddings.py')
NEG = [dict(type='SampleNegativeTexts', mode='same_image_with_replacement',
            num_negatives=3)]
LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadRISAnnotations')]
RESIZE_PACK = [dict(type='Resize', scale=(64, 64), keep_ratio=False),
               dict(type='PackRISInputs')]
CROP_PIPELINE = NEG + LOAD + [dict(type='CropToBox')] + RESIZE_PACK
IMAGE_PIPELINE = NEG + LOAD + RESIZE_PACK


# -- fixtures ------------------------------------------------------------
class Plain:
    """A stand-in source: index -> (name, index)."""

    def __init__(self, name, size):
        self.name, self.size = name, size
        self.metainfo = dict(name=name)

    def full_init(self):
        pass

    def __len__(self):
        return self.size

    def __getitem__(self, idx):
        return (self.name, int(idx), getattr(idx, 'key', None))


SIZES = dict(a=7, b=50, c=13)
SCHEDULE = [
    dict(begin=0, ratios=dict(a=1.0)),
    dict(begin=100, ratios=dict(a=1, b=3)),
    dict(begin=300, ratios=dict(a=0.1, b=0.2, c=0.7)),
]


def plain_curriculum():
    return CurriculumDataset({n: Plain(n, s) for n, s in SIZES.items()})


def sampler(dataset=None, schedule=SCHEDULE, batch_size=4, **kwargs):
    kwargs.setdefault('seed', 3)
    return CurriculumSampler(dataset or plain_curriculum(), schedule,
                             batch_size, **kwargs)


def take(s, n):
    it = iter(s)
    return [next(it) for _ in range(n)]


def coco(root):
    return json.loads((root / 'instances.json').read_text())


def class_dataset(root, mode, **kwargs):
    cfg = dict(type='ClassInstanceDataset', data_root=str(root),
               ann_file='instances.json', data_prefix=dict(img_path='images'),
               mode=mode, pipeline=CROP_PIPELINE if mode == 'crop'
               else IMAGE_PIPELINE)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


# -- the sampler ---------------------------------------------------------
def test_mixing_ratios_follow_the_schedule():
    s = sampler(schedule=[
        dict(begin=0, ratios=dict(a=1.0)),
        dict(begin=20000, ratios=dict(a=1, b=3)),
        dict(begin=60000, ratios=dict(a=0.1, b=0.2, c=0.7)),
    ])
    ids = s.source_ids(0, 100000)
    assert (ids[:20000] == 0).all()
    for (lo, hi), expected in (((20000, 60000), [0.25, 0.75, 0]),
                               ((60000, 100000), [0.1, 0.2, 0.7])):
        share = np.bincount(ids[lo:hi], minlength=3) / (hi - lo)
        # 40000 draws: the standard error is at most 0.0025.
        np.testing.assert_allclose(share, expected, atol=0.01)
    assert s.ratios_at(20000) == dict(a=0.25, b=0.75, c=0.0)
    assert s.stage_index(59999) == 1 and s.stage_index(60000) == 2


def test_each_batch_comes_from_the_scheduled_source():
    dataset = plain_curriculum()
    s = sampler(dataset, batch_size=4)
    indices = take(s, 4 * 400)
    seen = Counter()
    for t in range(400):
        batch = [dataset.locate(i)[0] for i in indices[4 * t:4 * t + 4]]
        assert len(set(batch)) == 1, (t, batch)
        assert dataset.names[batch[0]] == s.source_at(t)
        seen[s.source_at(t)] += 1
    assert set(seen) == {'a', 'b', 'c'}
    # Each source is walked through in passes of permutations.
    a_indices = [int(i) for i in indices if dataset.locate(i)[0] == 0]
    for start in range(0, 7 * (len(a_indices) // 7), 7):
        assert sorted(a_indices[start:start + 7]) == list(range(7))
    # Every index carries a distinct draw key.
    keys = [i.key for i in indices]
    assert len(set(keys)) == len(keys)


def test_deterministic_per_seed():
    assert take(sampler(seed=3), 500) == take(sampler(seed=3), 500)
    assert [i.key for i in take(sampler(seed=3), 50)] == \
        [i.key for i in take(sampler(seed=3), 50)]
    assert take(sampler(seed=3), 500) != take(sampler(seed=4), 500)
    unshuffled = take(sampler(shuffle=False, batch_size=2), 6)
    assert [int(i) for i in unshuffled] == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize('done', [0, 1, 99, 100, 101, 350, 5000])
def test_resume_continues_the_stream(done):
    full = take(sampler(), 4 * (done + 30))
    resumed = sampler()
    resumed.skip(4 * done)
    part = take(resumed, 4 * 30)
    assert part == full[4 * done:]
    assert [i.key for i in part] == [i.key for i in full[4 * done:]]


def test_skip_needs_whole_batches():
    with pytest.raises(ValueError, match='batch_size 4'):
        sampler().skip(6)


def test_ranks_split_each_iteration():
    world = [take(sampler(batch_size=3, rank=r, world_size=2), 3 * 200)
             for r in range(2)]
    single = take(sampler(batch_size=6, rank=0, world_size=1), 6 * 200)
    for t in range(200):
        union = world[0][3 * t:3 * t + 3] + world[1][3 * t:3 * t + 3]
        assert union == single[6 * t:6 * t + 6]
        assert [i.key for i in union] == \
            [i.key for i in single[6 * t:6 * t + 6]]
    resumed = sampler(batch_size=3, rank=1, world_size=2)
    resumed.skip(3 * 120)
    assert take(resumed, 30) == world[1][3 * 120:3 * 130]


@pytest.mark.parametrize('schedule,error,match', [
    ([dict(begin=0, ratios=dict(z=1.0))], KeyError, "unknown sources .'z'"),
    ([dict(begin=0, ratios=dict(a=0.0, b=0))], ValueError,
     'sum to more than 0'),
    ([dict(begin=0, ratios=dict())], ValueError, 'sum to more than 0'),
    ([dict(begin=0, ratios=dict(a=1)), dict(begin=50, ratios=dict(b=1)),
      dict(begin=20, ratios=dict(c=1))], ValueError, 'strictly increasing'),
    ([dict(begin=5, ratios=dict(a=1))], ValueError, 'begin at iteration 0'),
    ([dict(begin=0, ratios=dict(a=-1, b=2))], ValueError, '>= 0'),
    ([dict(begin=0, ratios=dict(a=float('nan')))], ValueError, 'finite'),
    ([dict(begin=0, ratio=dict(a=1))], ValueError, 'must be dict'),
    ([], ValueError, 'non-empty'),
])
def test_bad_schedules(schedule, error, match):
    with pytest.raises(error, match=match):
        sampler(schedule=schedule)


def test_bad_sampler_arguments():
    with pytest.raises(ValueError, match="dataloader's batch_size"):
        sampler(batch_size=0)
    with pytest.raises(TypeError, match='CurriculumDataset'):
        CurriculumSampler(Plain('a', 3), SCHEDULE, 2)
    with pytest.raises(ValueError, match='at least one source'):
        CurriculumDataset({})
    with pytest.raises(ValueError, match=r"sources \['b'\] are empty"):
        CurriculumDataset(dict(a=Plain('a', 2), b=Plain('b', 0)))
    assert check_schedule([dict(begin=0, ratios=dict(b=2, c=2))],
                          ['a', 'b', 'c'])[0]['ratios'] == dict(
                              a=0.0, b=0.5, c=0.5)


def test_sampler_from_config():
    from mmwris.registry import DATA_SAMPLERS
    s = DATA_SAMPLERS.build(
        dict(type='CurriculumSampler', batch_size=2, schedule=SCHEDULE),
        default_args=dict(dataset=plain_curriculum(), seed=0))
    assert isinstance(s, CurriculumSampler) and s.seed == 0


def test_hook_checks_and_logs():
    dataset = plain_curriculum()
    s = sampler(dataset, batch_size=4)
    hub = MessageHub.get_instance('test_ppt_curriculum_hook')
    runner = SimpleNamespace(
        train_dataloader=DataLoader(dataset, batch_size=4, sampler=s,
                                    collate_fn=list),
        message_hub=hub, iter=0)
    hook = CurriculumHook()
    hook.before_train(runner)
    for t in (0, 150, 320):
        runner.iter = t
        hook.before_train_iter(runner, t)
        assert hub.get_scalar('train/curriculum/stage').current() == \
            s.stage_index(t)
        assert hub.get_scalar(
            f'train/curriculum/src_{s.source_at(t)}').current() == 1.0
        assert hub.get_scalar('train/curriculum/ratio_c').current() == \
            pytest.approx(s.ratios_at(t)['c'])
    runner.train_dataloader = DataLoader(dataset, batch_size=8, sampler=s)
    with pytest.raises(ValueError, match='batch_size=8'):
        CurriculumHook().before_train(runner)
    runner.train_dataloader = DataLoader(dataset, batch_size=4)
    with pytest.raises(TypeError, match='CurriculumSampler'):
        CurriculumHook().before_train(runner)


# -- the class-level sources on real COCO annotations ----------------------
def test_crop_mode_boxes_and_categories(real_refer_root):
    data = coco(real_refer_root)
    names = {c['id']: c['name'] for c in data['categories']}
    anns = [a for a in data['annotations'] if not a['iscrowd']]
    dataset = class_dataset(real_refer_root, 'crop', crop_margin=0.25)
    assert len(dataset) == len(anns) == 108
    images = {i['id']: i for i in data['images']}
    by_id = {a['id']: a for a in anns}
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        ann = by_id[info['ann_id']]
        img = images[info['image_id']]
        assert info['text'] == names[ann['category_id']]
        assert info['category_id'] == ann['category_id']
        x, y, w, h = ann['bbox']
        x0, y0, x1, y1 = info['crop_bbox']
        assert x0 == max(0, int(np.floor(x - 0.25 * w)))
        assert y0 == max(0, int(np.floor(y - 0.25 * h)))
        assert x1 == min(img['width'], int(np.ceil(x + 1.25 * w)))
        assert y1 == min(img['height'], int(np.ceil(y + 1.25 * h)))
        others = {t for o in info['other_refs'] for _, t in o['sentences']}
        present = {names[a['category_id']] for a in anns
                   if a['image_id'] == img['id']}
        assert others == present - {info['text']}
    # Loaded (no Resize): the image and the mask are the crop's.
    dataset = class_dataset(real_refer_root, 'crop', crop_margin=0.25,
                            pipeline=NEG + LOAD + [
                                dict(type='CropToBox'),
                                dict(type='PackRISInputs')])
    for idx in (0, 40, 107):
        info = dataset.get_data_info(idx)
        x0, y0, x1, y1 = info['crop_bbox']
        ann = by_id[info['ann_id']]
        sample = dataset[idx]['data_samples']
        assert sample.ori_shape == (y1 - y0, x1 - x0)
        assert tuple(dataset[idx]['inputs'].shape) == (3, y1 - y0, x1 - x0)
        assert sample.text == info['text']
        assert len(sample.neg_texts) == 3
        assert info['text'] not in sample.neg_texts
        full = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(
            ann['segmentation'], info['height'], info['width'])))
        gt = sample.gt_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(gt, full[y0:y1, x0:x1])
        x, y, w, h = ann['bbox']
        np.testing.assert_allclose(
            sample.gt_bbox, [x - x0, y - y0, x + w - x0, y + h - y0],
            atol=1e-4)


def test_image_mode_one_sample_per_category(real_refer_root):
    data = coco(real_refer_root)
    names = {c['id']: c['name'] for c in data['categories']}
    pairs = sorted({(a['image_id'], a['category_id'])
                    for a in data['annotations']})
    dataset = class_dataset(real_refer_root, 'image')
    got = [(dataset.get_data_info(i)['image_id'],
            dataset.get_data_info(i)['category_id'])
           for i in range(len(dataset))]
    assert got == pairs
    multi = None
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        present = {names[c] for i, c in pairs if i == info['image_id']}
        others = {t for o in info['other_refs'] for _, t in o['sentences']}
        assert info['text'] == names[info['category_id']]
        assert others == present - {info['text']}
        if len(info['instance_segmentations']) > 2 and multi is None:
            multi = idx
    assert multi is not None
    info = dataset.get_data_info(multi)
    mine = [a for a in data['annotations']
            if (a['image_id'], a['category_id']) ==
            (info['image_id'], info['category_id'])]
    union = np.zeros((info['height'], info['width']), np.uint8)
    for a in mine:
        union |= mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(
            a['segmentation'], info['height'], info['width'])))
    sample = dataset[multi]['data_samples']
    assert sample.ori_shape == (info['height'], info['width'])
    assert sample.text == names[info['category_id']]
    assert info['text'] not in sample.neg_texts
    assert set(sample.neg_texts) <= {names[c] for i, c in pairs
                                     if i == info['image_id']}
    gt = sample.gt_sem_seg.data[0].numpy()
    # The pipeline resized the mask to 64 x 64: compare with the resized
    # union (nearest neighbour).
    import mmcv
    expected = mmcv.imresize(union, (64, 64), interpolation='nearest')
    np.testing.assert_array_equal(gt, expected)
    boxes = np.array([a['bbox'] for a in mine])
    np.testing.assert_allclose(sample.gt_bbox, [
        boxes[:, 0].min(), boxes[:, 1].min(),
        (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()])


def test_merge_rle_and_polygons():
    from mmwris.datasets.class_instance_dataset import merge_segmentations
    from mmwris.datasets.transforms import decode_coco_segmentation
    a = np.zeros((20, 30), np.uint8)
    a[2:8, 3:9] = 1
    rle = mask_utils.encode(np.asfortranarray(a))
    rle['counts'] = rle['counts'].decode('ascii')
    poly = [[20, 10, 28, 10, 28, 18, 20, 18]]
    merged = merge_segmentations([rle, poly], 20, 30)
    mask = decode_coco_segmentation(merged, 20, 30)
    expected = a | decode_coco_segmentation(poly, 20, 30)
    np.testing.assert_array_equal(mask, expected)


def test_class_dataset_options_and_errors(real_refer_root):
    # Drop the images of the val and test refs (5 train images remain).
    kept = class_dataset(real_refer_root, 'image', exclude_refs=[
        dict(refs_file='refs(umd).p', splits=['val', 'test'])])
    assert len({kept.get_data_info(i)['image_id']
                for i in range(len(kept))}) == 5
    big = class_dataset(real_refer_root, 'crop', min_box_size=100,
                        text_template='a photo of a {}.')
    assert 0 < len(big) < 108
    assert big.get_data_info(0)['text'].startswith('a photo of a ')
    with pytest.raises(ValueError, match='needs CropToBox'):
        class_dataset(real_refer_root, 'crop', pipeline=IMAGE_PIPELINE)
    with pytest.raises(ValueError, match='after LoadRISAnnotations'):
        class_dataset(real_refer_root, 'crop', pipeline=[
            dict(type='LoadImageFromFile'), dict(type='CropToBox'),
            dict(type='LoadRISAnnotations'), dict(type='PackRISInputs')])
    with pytest.raises(ValueError, match="mode='same_image_with_repl"):
        class_dataset(real_refer_root, 'image', pipeline=[
            dict(type='SampleNegativeTexts', mode='topped_up')]
            + IMAGE_PIPELINE[1:])
    with pytest.raises(ValueError, match='mode must be one of'):
        class_dataset(real_refer_root, 'boxes')
    with pytest.raises(ValueError, match='No instance'):
        class_dataset(real_refer_root, 'crop', min_box_size=10000)
    os.remove(real_refer_root / 'images' / coco(real_refer_root)[
        'images'][0]['file_name'])
    with pytest.raises(FileNotFoundError, match='do not exist'):
        class_dataset(real_refer_root, 'crop')


def test_toy_corpora_sources(tmp_path):
    from toy_world import make_toy_corpora
    make_toy_corpora(tmp_path, num_captions=(12, 2),
                     num_class_images=(6, 2))
    captions = DATASETS.build(dict(
        type='ObjectCentricCaptionDataset',
        data_root=str(tmp_path / 'captions'), ann_file='captions_train.csv',
        pipeline=NEG + [dict(type='LoadImageFromFile')] + RESIZE_PACK))
    assert len(captions) == 12
    sample = captions[0]['data_samples']
    assert len(sample.neg_texts) == 3 and sample.text not in sample.neg_texts
    classes = DATASETS.build(dict(
        type='ClassInstanceDataset', data_root=str(tmp_path / 'classes'),
        ann_file='instances_train.json', mode='image',
        pipeline=IMAGE_PIPELINE))
    data = json.loads((tmp_path / 'classes' /
                       'instances_train.json').read_text())
    assert len(classes) == len({(a['image_id'], a['category_id'])
                                for a in data['annotations']})
    has_rle = [i for i in range(len(classes)) if any(
        isinstance(s, dict) for s in
        classes.get_data_info(i)['instance_segmentations'])]
    for idx in range(len(classes)):
        sample = classes[idx]['data_samples']
        assert sample.gt_sem_seg.data.sum() > 0
        assert sample.text in {c['name'] for c in data['categories']}
    assert has_rle, 'the toy corpus has RLE instances'


def test_curriculum_dataset_loads_each_source_with_its_pipeline(
        real_refer_root):
    root = str(real_refer_root)
    refer = dict(type='RefCOCODataset', data_root=root,
                 refs_file='refs(umd).p', split='train',
                 pipeline=[dict(type='SampleNegativeTexts',
                                num_negatives=2)] + LOAD + RESIZE_PACK)
    crops = dict(type='ClassInstanceDataset', data_root=root, mode='crop',
                 pipeline=CROP_PIPELINE)
    images = dict(type='ClassInstanceDataset', data_root=root, mode='image',
                  pipeline=IMAGE_PIPELINE)
    dataset = DATASETS.build(dict(type='CurriculumDataset', sources=dict(
        crops=crops, images=images, refer=refer)))
    assert dataset.names == ['crops', 'images', 'refer']
    assert dataset.metainfo == dataset.source('refer').metainfo
    assert len(dataset) == sum(dataset.lengths)
    s = CurriculumSampler(dataset, [
        dict(begin=0, ratios=dict(crops=1)),
        dict(begin=2, ratios=dict(crops=1, images=1, refer=1))],
        batch_size=2, seed=1)
    indices = take(s, 2 * 12)
    loaded = [dataset[i] for i in indices]
    for t in range(12):
        name = s.source_at(t)
        for item in loaded[2 * t:2 * t + 2]:
            sample = item['data_samples']
            assert item['inputs'].shape == (3, 64, 64)
            assert isinstance(sample.text, str) and sample.text
            assert len(sample.neg_texts) in (2, 3)
            assert (sample.get('ref_id') is not None) == (name == 'refer')
            assert (sample.get('ann_id') is not None) == (name != 'images')
    # The draws repeat after a resume (the keys travel with the indices).
    resumed = CurriculumSampler(dataset, s.stages, batch_size=2, seed=1)
    resumed.skip(2 * 5)
    again = [dataset[i] for i in take(resumed, 2 * 7)]
    for a, b in zip(loaded[10:], again):
        assert a['data_samples'].text == b['data_samples'].text
        assert a['data_samples'].neg_texts == b['data_samples'].neg_texts


def test_curriculum_configs_build():
    from mmengine.config import Config
    for name, sources in (('toy', ['captions', 'classes', 'refer']),
                          ('refcoco', ['crops', 'images', 'refer'])):
        cfg = Config.fromfile(osp.join(
            REPO, 'configs', '_base_', 'datasets',
            f'ppt_curriculum_{name}.py'))
        loader = cfg.train_dataloader
        assert list(loader.dataset.sources) == sources
        assert loader.sampler.batch_size == loader.batch_size
        check_schedule(loader.sampler.schedule, sources)
        assert cfg.custom_hooks == [dict(type='CurriculumHook')]
        for src in sources:
            pipes = [t['type'] for t in
                     cfg.curriculum_sam_sources[src]['pipeline']]
            assert 'LoadSAMEmbedding' in pipes
            assert pipes.index('LoadSAMEmbedding') < pipes.index('Resize')
        assert [t['type'] for t in cfg.test_sam_pipeline][:2] == [
            'LoadImageFromFile', 'LoadSAMEmbedding']


# -- the SAM embedding store -----------------------------------------------
@pytest.fixture(scope='module')
def sam_weights(tmp_path_factory):
    """A randomly initialised vit_tiny SAM saved as a plain state dict, and
    vit_toy weights (the wrong arch for it)."""
    from mmwris.models.foundation.sam import build_sam_model
    folder = tmp_path_factory.mktemp('sam')
    torch.manual_seed(0)
    tiny = str(folder / 'sam_tiny.pth')
    torch.save(build_sam_model('vit_tiny').state_dict(), tiny)
    toy = str(folder / 'sam_toy.pth')
    torch.save(build_sam_model('vit_toy').state_dict(), toy)
    return SimpleNamespace(tiny=tiny, toy=toy)


def write_config(path, root, store=None, mode='crop', input_size=(64, 64)):
    load = f", dict(type='LoadSAMEmbedding', embedding_dir='{store}')" \
        if store else ''
    crop = ", dict(type='CropToBox')" if mode == 'crop' else ''
    path.write_text(textwrap.dedent(f"""\
        crop_size = {tuple(input_size)}
        pipeline = [dict(type='LoadImageFromFile'){load},
                    dict(type='LoadRISAnnotations'){crop},
                    dict(type='Resize', scale=crop_size, keep_ratio=False),
                    dict(type='PackRISInputs')]
        refer = dict(type='RefCOCODataset', data_root='{root}',
                     refs_file='refs(umd).p', split=['train', 'val'],
                     test_mode=True, pipeline=pipeline)
        instances = dict(type='ClassInstanceDataset', data_root='{root}',
                         mode='{mode}', pipeline=pipeline)
        train_dataloader = dict(dataset=dict(
            type='CurriculumDataset',
            sources=dict(instances=instances, refer=refer)))
        """))
    return str(path)


def run_tool(*argv):
    from toy_sam import load_tool
    return load_tool(TOOL).main([str(a) for a in argv])


def stored(store):
    folder = osp.join(store, 'embeddings')
    return {name: os.stat(osp.join(folder, name)).st_mtime_ns
            for name in sorted(os.listdir(folder))}


def test_embedding_tool_writes_resumes_and_loads(real_refer_root, tmp_path,
                                                 sam_weights):
    from mmwris.models.foundation.frozen_sam import FrozenSAM
    from mmwris.proposals.sam_embeddings import (load_embedding_index,
                                                 read_embedding)
    store = str(tmp_path / 'store')
    config = write_config(tmp_path / 'cfg.py', real_refer_root, store,
                          mode='image')
    common = ('--sam-arch', 'vit_tiny', '--sam-checkpoint', sam_weights.tiny,
              '--device', 'cpu', '--no-progress', '--batch-size', '4')
    # Only the refer source here: its 10 train/val images.
    run_tool(config, '--sources', 'refer', *common)
    summary = json.loads(open(osp.join(store, 'summary.json')).read())
    assert summary['written'] == 10 and summary['failed'] == 0
    first = stored(store)
    assert len(first) == 10
    # All sources (the instance images include the refer images): the
    # finished files are skipped, not rewritten.
    run_tool(config, *common)
    summary = json.loads(open(osp.join(store, 'summary.json')).read())
    assert summary == dict(summary, items=15, written=5, skipped=10,
                           present=15)
    second = stored(store)
    assert {k: second[k] for k in first} == first
    index = load_embedding_index(store)
    assert len(index['items']) == 15
    assert index['settings']['shape'] == [32, 8, 8]
    assert index['settings']['input_size'] == [64, 64]
    # Loaded through the pipeline: the packed sam_embedding equals the one
    # FrozenSAM computes from the network input (float16 tolerance).
    from mmwris.utils import register_all_modules  # noqa: F401
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    sam = FrozenSAM('vit_tiny', sam_weights.tiny)
    for idx in (0, len(dataset) - 1):
        item = dataset[idx]
        embedding = item['data_samples'].sam_embedding
        assert embedding.dtype == torch.float16
        assert tuple(embedding.shape) == (32, 8, 8)
        rgb = item['inputs'].flip(0)[None].float() / 255.0
        expected = sam.encode_images(rgb)[0]
        np.testing.assert_allclose(embedding.float().numpy(),
                                   expected.numpy(), rtol=2e-3, atol=2e-3)
        key = str(item['data_samples'].image_id)
        on_disk = read_embedding(osp.join(store, 'embeddings', key + '.npy'))
        assert isinstance(on_disk, np.memmap)
        np.testing.assert_array_equal(on_disk, embedding.numpy())


def test_embedding_shards_union_is_the_full_store(real_refer_root, tmp_path,
                                                  sam_weights):
    config = write_config(tmp_path / 'cfg.py', real_refer_root)
    common = ('--sam-arch', 'vit_tiny', '--sam-checkpoint', sam_weights.tiny,
              '--device', 'cpu', '--no-progress')
    full, sharded = tmp_path / 'full', tmp_path / 'sharded'
    run_tool(config, '--sources', 'instances', '--out', full,
             '--max-items', 12, *common)
    for shard in ('0/3', '1/3', '2/3'):
        run_tool(config, '--sources', 'instances', '--out', sharded,
                 '--max-items', 12, '--shard', shard, *common)
    names = sorted(stored(str(full)))
    assert len(names) == 12 and all('_crop' in n for n in names)
    assert sorted(stored(str(sharded))) == names
    for name in names:
        a = np.load(full / 'embeddings' / name)
        b = np.load(sharded / 'embeddings' / name)
        np.testing.assert_array_equal(a, b)
    written = [json.loads((sharded / f'summary.shard{i}of3.json')
                          .read_text())['written'] for i in range(3)]
    assert written == [4, 4, 4]
    # Another preprocessing into the same store is refused.
    with pytest.raises(SystemExit, match='other settings'):
        run_tool(config, '--sources', 'instances', '--out', full,
                 '--input-size', 0, 0, *common)


def test_embedding_tool_sam_errors(real_refer_root, tmp_path, sam_weights):
    config = write_config(tmp_path / 'cfg.py', real_refer_root)
    out = ('--out', tmp_path / 'out', '--device', 'cpu', '--no-progress')
    with pytest.raises(SystemExit, match='missing.pth'):
        run_tool(config, '--sam-arch', 'vit_tiny', '--sam-checkpoint',
                 tmp_path / 'missing.pth', *out)
    with pytest.raises(SystemExit, match="Cannot build SAM 'vit_tiny'"):
        run_tool(config, '--sam-arch', 'vit_tiny', '--sam-checkpoint',
                 sam_weights.toy, *out)
    with pytest.raises(SystemExit, match='--sam-checkpoint'):
        run_tool(config, '--sam-arch', 'vit_tiny', *out)
    with pytest.raises(SystemExit, match='no LoadSAMEmbedding'):
        run_tool(config, '--sam-arch', 'vit_tiny', '--sam-checkpoint',
                 sam_weights.tiny, '--device', 'cpu')


def test_missing_embedding_names_the_image_and_store(real_refer_root,
                                                     tmp_path):
    load = TRANSFORMS.build(dict(type='LoadSAMEmbedding',
                                 embedding_dir=str(tmp_path / 'store')))
    with pytest.raises(FileNotFoundError) as error:
        load(dict(image_id=42, img_path='images/x.jpg',
                  crop_bbox=[1, 2, 30, 40]))
    message = str(error.value)
    assert 'image_id=42' in message and 'images/x.jpg' in message
    assert str(tmp_path / 'store') in message and '42_crop1-2-30-40.npy' \
        in message and 'precompute_sam_embeddings' in message
    with pytest.raises(ValueError, match='after a flip'):
        load(dict(image_id=42, img_path='x', flip=True))


def test_pack_keeps_other_samples_unchanged():
    pack = TRANSFORMS.build(dict(type='PackRISInputs'))
    img = np.zeros((8, 8, 3), np.uint8)
    plain = pack(dict(img=img, text='a', img_path='x', ori_shape=(8, 8),
                      img_shape=(8, 8)))['data_samples']
    assert 'sam_embedding' not in plain
    packed = pack(dict(img=img, text='a', img_path='x', ori_shape=(8, 8),
                       img_shape=(8, 8),
                       sam_embedding=np.ones((4, 2, 2), np.float16)))
    embedding = packed['data_samples'].sam_embedding
    assert isinstance(embedding, torch.Tensor)
    assert tuple(embedding.shape) == (4, 2, 2)


# -- through mmengine's runner: train, resume, log -------------------------
SEEN = []


def _recorder():
    from mmengine.model import BaseModel
    from mmwris.registry import MODELS

    @MODELS.register_module(force=True)
    class CurriculumRecorder(BaseModel):
        """Records the texts of every training batch."""

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, inputs, data_samples=None, mode='loss'):
            SEEN.append([(s.text, tuple(s.get('neg_texts') or ()))
                         for s in data_samples])
            return dict(loss=self.weight.sum() * 0 + 1.0)


def runner_cfg(root, work_dir, **kwargs):
    from mmengine.config import Config
    root = str(root)
    sources = dict(
        crops=dict(type='ClassInstanceDataset', data_root=root, mode='crop',
                   pipeline=CROP_PIPELINE),
        refer=dict(type='RefCOCODataset', data_root=root,
                   refs_file='refs(umd).p', split='train',
                   pipeline=[dict(type='SampleNegativeTexts',
                                  num_negatives=2)] + LOAD + RESIZE_PACK))
    cfg = dict(
        default_scope='mmwris', work_dir=str(work_dir),
        model=dict(type='CurriculumRecorder'),
        train_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='CurriculumSampler', batch_size=2, schedule=[
                dict(begin=0, ratios=dict(crops=1)),
                dict(begin=3, ratios=dict(crops=1, refer=1))]),
            dataset=dict(type='CurriculumDataset', sources=sources),
            collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=8,
                       val_interval=100),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=4),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='CurriculumHook')],
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=5), log_level='WARNING')
    cfg.update(kwargs)
    return Config(cfg)


def test_runner_trains_and_resumes_the_curriculum(real_refer_root,
                                                  tmp_path):
    from mmengine.runner import Runner
    _recorder()
    SEEN.clear()
    runner = Runner.from_cfg(runner_cfg(real_refer_root, tmp_path / 'a'))
    runner.train()
    full = list(SEEN)
    assert len(full) == 8
    sampler = runner.train_dataloader.sampler
    names = {c['name'] for c in coco(real_refer_root)['categories']}
    sources = [sampler.source_at(t) for t in range(8)]
    assert sources[:3] == ['crops'] * 3 and 'refer' in sources
    for source, batch in zip(sources, full):
        # A batch is all class names (crops) or all expressions (refer).
        assert {text in names for text, _ in batch} == {source == 'crops'}
    logged = [json.loads(line) for line in open(osp.join(
        runner.log_dir, 'vis_data', 'scalars.json'))]
    assert [row['curriculum/stage'] for row in logged] == \
        [0, 0, 0, 1, 1, 1, 1, 1]
    assert all(row['curriculum/ratio_refer'] == (0.5 if row['step'] > 3
                                                else 0.0) for row in logged)
    SEEN.clear()
    resumed = Runner.from_cfg(runner_cfg(
        real_refer_root, tmp_path / 'b', resume=True,
        load_from=str(tmp_path / 'a' / 'iter_4.pth')))
    resumed.train()
    assert SEEN == full[4:]
    # A batch size that differs from the sampler's is refused.
    bad = runner_cfg(real_refer_root, tmp_path / 'c')
    bad.train_dataloader.batch_size = 3
    with pytest.raises(ValueError, match='batch_size=3'):
        Runner.from_cfg(bad).train()
