"""PPT learns: a short real training on toy data from the pretrained tiny
CLIP and a pretrained toy SAM, measured against the naive SAM integration
(the CLIP response peak as one positive point) on the same responses."""
import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import toy_sam
from conftest import REPO, make_toy_refer
from mmwris.registry import MODELS
from toy_world import pretrained_tiny_clip  # noqa: F401

TOY = osp.join(REPO, 'configs', 'ppt',
               'ppt_clip-tiny-sam-toy_1xb16-1k_toyrefer-128x128.py')
# The shared pretrained_tiny_sam (100 iterations) barely reacts to its
# prompts on the toy refer images: the interior point of the GT mask gives
# a one-point mIoU of 17.7 on this val split and the same mask for one,
# three or five points. 400 iterations give 59.2 (multimask) / 67.2.
SAM_ITERS = 400
DATA = dict(num_train=400, num_val=40, num_testA=2, num_testB=2, seed=11)
ITERS = 150
BATCH = 16
LR = 1e-3
MARGIN = 1.0  # mIoU points


@pytest.fixture(scope='session')
def toy_sam_400(request, tmp_path_factory):
    """``pretrained_tiny_sam``'s recipe (tests/toy_sam.py) run for
    ``SAM_ITERS`` iterations, cached the same way (about 4 min once)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(toy_sam, 'ITERS', SAM_ITERS)
        return toy_sam.pretrained_tiny_sam.__wrapped__(request,
                                                       tmp_path_factory)


def short_cfg(clip, sam, root, work_dir):
    cfg = Config.fromfile(TOY)
    model = cfg.model
    model.image_encoder.pretrained = clip.weights
    model.text_encoder.pretrained = clip.weights
    model.decode_head.loss_mask_cal.scorer.pretrained = clip.weights
    model.decode_head.loss_select.scorer.pretrained = clip.weights
    model.sam.checkpoint = sam.export
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root)
    cfg.train_dataloader.batch_size = BATCH
    cfg.optim_wrapper.optimizer.lr = LR
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, begin=0, end=10,
             by_epoch=False),
        dict(type='PolyLR', power=0.9, begin=10, end=ITERS, by_epoch=False)
    ]
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=ITERS,
                         val_interval=ITERS + 1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=ITERS, by_epoch=False)
    cfg.default_hooks.logger.interval = 50
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f'visualizer_{osp.basename(str(work_dir))}'
    cfg.experiment_name = osp.basename(str(work_dir))
    cfg.log_level = 'WARNING'
    return cfg


def test_ppt_beats_the_naive_sam_integration(pretrained_tiny_clip,
                                             toy_sam_400, tmp_path):
    root = tmp_path / 'toy_refer'
    make_toy_refer(root, **DATA)
    runner = Runner.from_cfg(short_cfg(pretrained_tiny_clip, toy_sam_400,
                                       root, tmp_path / 'work_dir'))
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    model = runner.model
    results = {}
    for name, decoder in (
            ('ppt', dict(type='PointPromptSAMDecoder')),
            ('ppt_no_negatives', dict(type='PointPromptSAMDecoder',
                                      use_negatives=False)),
            ('naive', dict(type='ResponsePeakSAMDecoder'))):
        model.mask_decoder = MODELS.build(decoder)
        with torch.no_grad():
            results[name] = runner.val_loop.run()['val/mIoU']
    print(f'{ITERS} iterations in {seconds:.0f} s; val mIoU {results}')
    assert results['ppt'] > results['naive'] + MARGIN, results
