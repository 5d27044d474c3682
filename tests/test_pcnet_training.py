"""PCNet through the tools: phrases -> proposals -> train -> test on toy data,
the RefCOCO/RefCOCO+/RefCOCOg paper configs, two CPU processes, and real
learning on the toy data."""
import glob
import json
import os.path as osp
import shutil
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import DATA, REPO, make_toy_refer
from test_tools import free_port, read_metrics
from test_tris_training import point_to, run, train_one_epoch

TOY = osp.join(REPO, 'configs', 'pcnet',
               'pcnet_clip-tiny_1xb32-3k_toyrefer-128x128.py')
BASELINE = osp.join(REPO, 'configs', 'baselines',
                    'centerprior_gaussian_1xb32-eval_toyrefer-128x128.py')
# The training recipes (the -eval_ configs only evaluate a checkpoint).
PAPER_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'pcnet',
                                          'pcnet_clip-r50_*15e_*.py')))
# Our clean re-design with the same data and schedule.
CLEAN_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'pcnet',
                                          'pcnet-clean_clip-r50_*15e_*.py')))
TINY_CLIP = dict(
    embed_dim=64,
    vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=128),
    text_cfg=dict(context_length=20, vocab_size=49408, width=64, heads=2,
                  layers=2))


def data_options(root):
    return [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')]


def make_pcnet_inputs(root):
    """Rule-based phrases and colour-region proposals where the toy config
    looks for them (relative to its data_root)."""
    run([sys.executable, 'tools/decompose_phrases.py', TOY, '--out',
         str(root / 'phrases.json'), '--backend', 'rule', '--no-progress',
         '--cfg-options', f'train_dataloader.dataset.data_root={root}'])
    run([sys.executable, 'tools/generate_proposals.py', TOY, '--out',
         str(root / 'proposals'), '--backend', 'regions', '--no-clip',
         '--cfg-options', f'train_dataloader.dataset.data_root={root}'])


@pytest.fixture(scope='module')
def pcnet_toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('pcnet_toy')
    make_toy_refer(root, num_train=40, num_val=8, num_testA=6, num_testB=6,
                   seed=5)
    make_pcnet_inputs(root)
    return root


def test_pcnet_pipeline_on_toy_data(tmp_path):
    """tools/pipelines/pcnet.sh: rule-based phrases, colour-region
    proposals, tools/train.py, tools/test.py with the segmentor metrics;
    a second run reuses everything."""
    root = tmp_path / 'toy'
    make_toy_refer(root, num_train=20, num_val=6, num_testA=4, num_testB=4,
                   seed=6)
    work = tmp_path / 'work'
    options = data_options(root) + [
        'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
        'train_dataloader.batch_size=4', 'val_dataloader.batch_size=8',
        'test_dataloader.batch_size=8']
    env = dict(PYTHON=sys.executable,
               PROPOSAL_ARGS='--backend regions --no-clip')
    run(['bash', 'tools/pipelines/pcnet.sh', TOY, str(work)] +
        options, extra_env=env)
    phrases = json.loads((root / 'phrases.json').read_text())
    assert len(phrases) > 50
    assert all(record['phrases'] for record in phrases.values())
    index = json.loads((root / 'proposals' / 'index.json').read_text())
    assert len(index['images']) == 34
    assert (work / 'iter_4.pth').is_file()
    metrics = read_metrics(work / 'eval')
    for split in ('val', 'testA', 'testB'):
        for name in ('PointM', 'mIoU', 'segmentor/mIoU', 'segmentor/oIoU'):
            assert f'{split}/{name}' in metrics, (split, name)
    assert glob.glob(str(work / 'eval' / 'results' / '*'))

    again = run(['bash', 'tools/pipelines/pcnet.sh', TOY, str(work)] +
                options, extra_env=env)
    log = again.stdout + again.stderr
    assert 'training: done' in log
    assert 'done now 0' in log
    assert '0 written' in log


def test_pcnet_dataset_names_missing_proposals(pcnet_toy_root, tmp_path):
    from mmwris.registry import DATASETS
    folder = tmp_path / 'proposals'
    shutil.copytree(pcnet_toy_root / 'proposals', folder)
    index = json.loads((folder / 'index.json').read_text())
    dropped = sorted(index['images'])[:2]
    for image_id in dropped:
        del index['images'][image_id]
    (folder / 'index.json').write_text(json.dumps(index))
    cfg = Config.fromfile(TOY)
    dataset = cfg.val_dataloader.dataset
    dataset.update(data_root=str(pcnet_toy_root), proposal_dir=str(folder),
                   split=['train', 'val', 'testA', 'testB'])
    with pytest.raises(KeyError, match='lack 2 images') as error:
        DATASETS.build(dataset)
    for image_id in dropped:
        assert image_id in str(error.value)
    assert 'generate_proposals.py' in str(error.value)


@pytest.fixture(scope='module')
def real_pcnet_root(tmp_path_factory):
    """The real RefCOCOg-umd subset (placeholder images) with rule-based
    phrases and colour-region proposals scored by a tiny random CLIP."""
    import cv2
    import numpy as np
    root = tmp_path_factory.mktemp('refcocog_pcnet')
    for name in ('refs(umd).p', 'instances.json'):
        shutil.copy(osp.join(DATA, 'refcocog_umd', name), root / name)
    coco = json.loads((root / 'instances.json').read_text())
    (root / 'images').mkdir()
    rng = np.random.default_rng(0)
    for img in coco['images']:
        pixels = np.full((img['height'], img['width'], 3), 90, np.uint8)
        h, w = img['height'] // 3, img['width'] // 3
        pixels[h:2 * h, w:2 * w] = rng.integers(0, 255, 3, dtype=np.uint8)
        cv2.imwrite(str(root / 'images' / img['file_name']), pixels)
    from mmwris.models.foundation import build_open_clip
    torch.save(build_open_clip(TINY_CLIP).state_dict(), root / 'clip.pth')
    refs = str(root / 'refs(umd).p')
    run([sys.executable, 'tools/decompose_phrases.py', '--refs', refs,
         '--out', str(root / 'phrases.json'), '--backend', 'rule',
         '--no-progress'])
    config = PAPER_CONFIGS[0]
    run([sys.executable, 'tools/generate_proposals.py', config, '--out',
         str(root / 'proposals'), '--backend', 'regions', '--clip-arch',
         json.dumps(TINY_CLIP), '--clip-weights', str(root / 'clip.pth'),
         '--cfg-options', f'train_dataloader.dataset.data_root={root}',
         'train_dataloader.dataset.refs_file=refs(umd).p',
         'train_dataloader.dataset.ann_file=instances.json',
         'train_dataloader.dataset.data_prefix.img_path=images'])
    return root


def test_pcnet_paper_configs_differ_only_in_data():
    """The four paper configs (released network) and their four clean
    twins share the model and schedule; only the dataset files differ (so
    training one of them end to end below covers the others)."""
    for configs in (PAPER_CONFIGS, CLEAN_CONFIGS):
        names = [osp.basename(p) for p in configs]
        for dataset in ('refcoco-unc', 'refcoco+-unc', 'refcocog-umd',
                        'refcocog-google'):
            assert any(f'_{dataset}-320x320' in n for n in names), dataset
        cfgs = [Config.fromfile(p) for p in configs]
        for cfg in cfgs:
            assert cfg.model == cfgs[0].model
            assert cfg.optim_wrapper == cfgs[0].optim_wrapper
            assert cfg.train_dataloader.batch_size == 48
            dataset = cfg.train_dataloader.dataset
            folder = dataset.refs_file.split('/')[0]
            assert dataset.phrase_file.startswith(folder + '/phrases(')
            assert dataset.proposal_dir.startswith(folder + '/proposals(')
            for loader in ('val_dataloader', 'test_dataloader'):
                assert cfg[loader].dataset.phrase_file == \
                    dataset.phrase_file
                assert cfg[loader].dataset.proposal_dir == \
                    dataset.proposal_dir
        assert cfgs[0].optim_wrapper.optimizer.lr == 5e-5
        assert cfgs[0].model.decode_head.num_stages == 3
        assert cfgs[0].model.test_cfg.mask_decoder.output == 'both'
    released = Config.fromfile(PAPER_CONFIGS[0])
    head = released.model.decode_head
    assert head.type == 'PCNetReleasedHead' and head.num_blocks == 4
    assert (head.cue_attention, head.renormalize, head.joint_partner,
            head.stage_positive) == ('released', True, True, 'phrase')
    assert head.loss_ras.shrink_pair == 'random'
    assert head.loss_iad.per_stage
    assert released.model.test_cfg.mask_decoder.select == 'max_response'
    assert released.model.test_cfg.mask_decoder.response_decoder.type == \
        'TRISOfficialMaskDecoder'
    assert [m.get('protocol', 'ours') for m in released.val_evaluator] == [
        'ours', 'pcnet']
    clean = Config.fromfile(CLEAN_CONFIGS[0])
    assert clean.model.decode_head.type == 'PCNetHead'
    assert clean.model.decode_head.token_channels == 512
    assert clean.model.decode_head.loss_ras.select == 'clip'
    # Apart from the model and the evaluators the twins are the same.
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper',
                'param_scheduler', 'train_cfg'):
        assert released[key] == clean[key], key


@pytest.mark.parametrize('variant', ['released', 'clean'])
def test_pcnet_paper_config_trains_on_fake_refer_data(real_pcnet_root,
                                                     tmp_path, variant):
    """RN50 (random weights), the RefCOCOg-umd configs (released network
    and clean twin): one epoch of the real subset's 5 train refs with
    phrases and CLIP-scored proposals, then val with both prediction
    modes (and, released, both evaluation protocols)."""
    configs = PAPER_CONFIGS if variant == 'released' else CLEAN_CONFIGS
    config = [p for p in configs if 'refcocog-umd' in p][0]
    cfg = Config.fromfile(config)
    point_to(cfg, real_pcnet_root)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.update(phrase_file='phrases.json',
                                   proposal_dir='proposals')
    scalars, losses = train_one_epoch(cfg, tmp_path)
    names = (('loss_cls', 'loss_cal_neg', 'loss_ras_anchor',
              'loss_ras_shrink', 'loss_iad') if variant == 'released' else
             ('loss_cls', 'loss_cal_pos', 'loss_ras_align',
              'loss_ras_shrink', 'loss_iad_overlap', 'loss_iad_select'))
    for name in names:
        assert name in losses[0], name
    assert any('val/segmentor/mIoU' in s for s in scalars)
    if variant == 'released':
        assert any('pcnet/val/segmentor/mIoU' in s for s in scalars)


def test_pcnet_two_process_cpu_training(pcnet_toy_root, tmp_path):
    """Phrase tokens are gathered across ranks with the sentences."""
    run(['bash', 'tools/dist_train.sh', TOY, '2', '--work-dir',
         str(tmp_path), '--cfg-options', 'train_cfg.max_iters=3',
         'train_cfg.val_interval=3', 'train_dataloader.batch_size=4',
         'default_hooks.logger.interval=1'] + data_options(pcnet_toy_root),
        extra_env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    log = open(glob.glob(str(tmp_path / '*' / '*.log'))[0]).read()
    assert 'Distributed training: True' in log
    assert 'loss_iad_overlap' in log
    assert (tmp_path / 'iter_3.pth').is_file()


def test_pcnet_evaluation_presets_through_tools_test(pcnet_toy_root,
                                                     tmp_path):
    """tools/test.py on the toy data with the released PCNet evaluation
    beside ours: ``pcnet/{split}/...`` scores one expression per ref (the
    first), ``{split}/...`` every expression; both with the released mask
    (R > 0) and the largest-max proposal."""
    import pickle

    from mmwris.registry import MODELS
    from mmwris.utils import register_all_modules
    register_all_modules()
    config = tmp_path / 'pcnet_eval_presets.py'
    dumps = {name: str(tmp_path / f'{name}.jsonl')
             for name in ('ours', 'pcnet')}
    config.write_text(
        f'_base_ = [{TOY!r}]\n'
        'model = dict(test_cfg=dict(mask_decoder=dict(\n'
        "    select='max_response',\n"
        "    response_decoder=dict(type='TRISOfficialMaskDecoder'))))\n"
        f"val_evaluator = [dict(type='RISMetric', output_file="
        f"{dumps['ours']!r}),\n"
        "                 dict(type='RISMetric', protocol='pcnet',\n"
        f"                      prefix='pcnet', output_file="
        f"{dumps['pcnet']!r})]\n"
        'test_evaluator = val_evaluator\n')
    cfg = Config.fromfile(str(config))
    torch.manual_seed(0)
    checkpoint = tmp_path / 'random.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()),
               checkpoint)
    work = tmp_path / 'eval'
    run([sys.executable, 'tools/test.py', str(config), str(checkpoint),
         '--work-dir', str(work), '--cfg-options'] +
        data_options(pcnet_toy_root))
    metrics = read_metrics(work)
    refs_file = glob.glob(str(pcnet_toy_root / '*' / 'refs*.p'))[0]
    with open(refs_file, 'rb') as f:
        refs = pickle.load(f)
    scored = {name: [json.loads(line) for line in open(path)]
              for name, path in dumps.items()}
    splits = sorted({r['split'] for r in scored['ours']})
    assert splits
    for split in splits:
        split_refs = [r for r in refs if r['split'] == split]
        sentences = [s['sent_id'] for r in split_refs
                     for s in r['sentences']]
        firsts = [r['sentences'][0]['sent_id'] for r in split_refs]
        assert len(sentences) > len(split_refs)  # the presets can differ
        assert sorted(r['sent_id'] for r in scored['ours']
                      if r['split'] == split) == sorted(sentences)
        assert sorted(r['sent_id'] for r in scored['pcnet']
                      if r['split'] == split) == sorted(firsts)
        for name in ('mIoU', 'oIoU', 'PointIt', 'segmentor/mIoU'):
            assert f'{split}/{name}' in metrics
            assert f'pcnet/{split}/{name}' in metrics
