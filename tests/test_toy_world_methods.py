"""The paper recipes on the toy data from the toy world's stand-ins
(issue 14, item 4): the toy-world configs load the pretrained tiny CLIP
where real CLIP weights load, and pretraining makes TRIS step 1 learn
faster than from scratch under the same budget."""
import os.path as osp
import sys

import pytest
from mmengine.config import Config

from conftest import REPO, make_toy_refer
from test_tris_training import data_options, run, val_metrics
from toy_world import pretrained_tiny_clip  # noqa: F401

SCRATCH = osp.join(REPO, 'configs', 'tris',
                   'tris_clip-tiny_1xb32-3k_toyrefer-128x128.py')
TOY_WORLD = osp.join(REPO, 'configs', 'tris',
                     'tris_clip-tiny-toyworld_1xb32-1k_toyrefer-128x128.py')
PCNET_TOY_WORLD = osp.join(
    REPO, 'configs', 'pcnet',
    'pcnet_clip-tiny-toyworld_1xb32-1k_toyrefer-128x128.py')
ITERS = 300


def weights_options(weights):
    return [f'model.image_encoder.pretrained={weights}',
            f'model.text_encoder.pretrained={weights}',
            f'model.decode_head.loss_cal.scorer.pretrained={weights}']


@pytest.fixture(scope='module')
def world_refer_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_world_refer')
    make_toy_refer(root, num_train=1000, num_val=60, num_testA=10,
                   num_testB=10, seed=7)
    return root


def test_toy_world_configs_start_from_the_stand_ins():
    """TRIS: both towers and the calibration scorer from the CLIP export;
    PCNet: the same, plus proposals from the SAM export ranked by it."""
    tris = Config.fromfile(TOY_WORLD)
    weights = tris.toy_clip_weights
    assert weights.startswith('data/toy_world/')
    assert tris.model.image_encoder.pretrained == weights
    assert tris.model.text_encoder.pretrained == weights
    assert tris.model.decode_head.loss_cal.scorer.pretrained == weights
    assert tris.model.decode_head.loss_cal.scorer.arch == \
        tris.model.image_encoder.arch
    assert tris.pseudo_label_cfg.prms
    assert tris.pseudo_label_cfg.scorer.pretrained == weights
    pcnet = Config.fromfile(PCNET_TOY_WORLD)
    assert pcnet.model.image_encoder.pretrained == weights
    assert pcnet.model.decode_head.loss_ras.select == 'clip'
    assert pcnet.proposal_cfg.backend == 'sam'
    assert pcnet.proposal_cfg.sam.arch == 'vit_toy'
    assert pcnet.proposal_cfg.clip.weights == weights
    assert all(step.get('with_clip_sim', True)
               for step in pcnet.train_dataloader.dataset.pipeline
               if step['type'] == 'LoadProposals')


def test_missing_stand_in_is_a_clear_error(tmp_path):
    """Before the main job has written the export, the config says which
    file is missing instead of training from random weights."""
    from mmwris.registry import MODELS
    from mmwris.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(TOY_WORLD)
    missing = str(tmp_path / 'clip-tiny_toycaptions.pth')
    cfg.model.image_encoder.pretrained = missing
    with pytest.raises(Exception, match='clip-tiny_toycaptions.pth'):
        MODELS.build(cfg.model)


def test_pretrained_clip_grounds_faster_than_scratch(
        pretrained_tiny_clip, world_refer_root, tmp_path):  # noqa: F811
    """Same data, batch, schedule and budget; the only difference is the
    pretrained start (calibration off in both, so only the start differs;
    the calibration loss has its own row in tools/toy_benchmark.py)."""
    results = {}
    for name, config, extra in (
            ('scratch', SCRATCH, []),
            ('pretrained', TOY_WORLD,
             weights_options(pretrained_tiny_clip.weights) +
             ['model.decode_head.loss_cal=None'])):
        work = tmp_path / name
        run([sys.executable, 'tools/train.py', config, '--work-dir',
             str(work), '--cfg-options', f'train_cfg.max_iters={ITERS}',
             f'train_cfg.val_interval={ITERS}',
             f'param_scheduler.1.end={ITERS}'] + extra +
            data_options(world_refer_root), threads=2, timeout=1500)
        results[name] = val_metrics(work)
    print({name: (m['val/PointM'], m['val/mIoU'])
           for name, m in results.items()})
    assert results['pretrained']['val/PointM'] > \
        results['scratch']['val/PointM'] + 5.0
