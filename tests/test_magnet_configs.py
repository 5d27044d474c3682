"""The MagNet configs: the eval configs (released protocol: the input
transform against the released one (official fixture), the mask decoder's
output size, one evaluation pass of the RefCOCOg-umd config on the real
refer fixture) and the training configs (one training iteration on the
real refer fixture); a tiny random model stands in for Swin-B / BERT-base
in the runs."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO
from mmwris.registry import MODELS, TRANSFORMS
from mmwris.structures import RISDataSample

PAPER = sorted(glob.glob(osp.join(REPO, 'configs', 'magnet',
                                  'magnet_swin-b_*eval*.py')))
TRAIN = sorted(glob.glob(osp.join(REPO, 'configs', 'magnet',
                                  'magnet*_swin-b_4xb8-40e_*.py')))
TINY_MODEL = osp.join(REPO, 'configs', '_base_', 'models',
                      'magnet_swin-tiny.py')


def test_paper_configs():
    names = {osp.basename(p) for p in PAPER}
    assert names == {
        f'magnet_swin-b_1xb8-eval_{d}-480x480.py'
        for d in ('refcoco-unc', 'refcoco+-unc', 'refcocog-umd',
                  'refcocog-google')
    }
    for path in PAPER:
        cfg = Config.fromfile(path)
        assert cfg.test_evaluator.protocol == 'magnet'
        assert cfg.model.test_cfg.mask_decoder.output == 'input'
        assert cfg.model.image_encoder.depths == (2, 2, 18, 2)
        resize = cfg.test_dataloader.dataset.pipeline[1]
        assert resize.backend == 'pillow' and resize.scale == (480, 480)


def test_released_input_transform():
    """PIL bilinear resize (aspect ratio not kept) + ImageNet statistics =
    the released transform (``tiny_inputs.pt`` ``image``, atol 1e-6)."""
    from official_fixtures import fixtures_root, load
    if not (fixtures_root() / 'magnet').is_dir():
        pytest.skip('no MagNet official fixtures')
    data = load('tiny_inputs.pt', 'magnet')
    size = tuple(data['image'].shape[-2:])
    cfg = Config.fromfile(PAPER[0])
    resize = TRANSFORMS.build(dict(cfg.test_dataloader.dataset.pipeline[1],
                                   scale=size[::-1]))
    preprocessor = MODELS.build(dict(cfg.model.data_preprocessor,
                                     size=size))
    for rgb, want in zip(data['raw_images_uint8'].numpy(), data['image']):
        img = resize(dict(img=rgb[..., ::-1].copy()))['img']
        batch = preprocessor(dict(
            inputs=[torch.from_numpy(img).permute(2, 0, 1).contiguous()],
            data_samples=[RISDataSample()]))['inputs']
        torch.testing.assert_close(batch[0], want, atol=1e-6, rtol=0)


def test_mask_decoder_output_at_input_size():
    decoder = MODELS.build(dict(type='MagNetMaskDecoder', output='input'))
    sample = RISDataSample(metainfo=dict(
        ori_shape=(30, 50), img_shape=(16, 20), batch_input_shape=(20, 24),
        padding_size=[0, 4, 0, 4]))
    decoder.decode_batch(torch.randn(1, 1, 5, 6), [sample])
    assert sample.pred_sem_seg.data.shape == (1, 16, 20)
    with pytest.raises(ValueError):
        MODELS.build(dict(type='MagNetMaskDecoder', output='other'))


def test_training_configs():
    names = {osp.basename(p)[:-3] for p in TRAIN}
    datasets = ('refcoco-unc', 'refcoco+-unc', 'refcocog-umd',
                'refcocog-google')
    assert {f'magnet_swin-b_4xb8-40e_{d}-480x480' for d in datasets} <= names
    for ablation in ('no-mg', 'no-align-loss', 'no-align-module'):
        assert f'magnet-{ablation}_swin-b_4xb8-40e_refcoco-unc-480x480' in \
            names
    for path in TRAIN:
        cfg = Config.fromfile(path)
        head = cfg.model.decode_head
        name = osp.basename(path)
        assert (head.mask_grounding is None) == ('no-mg' in name)
        assert (head.alignment is None) == ('no-align-loss' in name)
        assert (cfg.model.image_fusion.pool_sizes == ()) == (
            'no-align-module' in name)
        assert cfg.optim_wrapper.optimizer.lr == 5e-5
        assert cfg.train_cfg.max_epochs == 40
        assert cfg.train_dataloader.dataset.pipeline[2].scale == (480, 480)


def tiny_run_cfg(path, root, work_dir, split_loader):
    """``path`` with the tiny model (same losses / test_cfg) on the real
    RefCOCOg-umd subset."""
    cfg = Config.fromfile(path)
    tiny = Config.fromfile(TINY_MODEL).model
    for key in ('test_cfg', 'image_fusion', 'text_fusion'):
        tiny[key] = copy.deepcopy(cfg.model[key])
    for key in ('mask_grounding', 'alignment'):
        if cfg.model.decode_head.get(key) is not None:
            tiny.decode_head[key] = dict(cfg.model.decode_head[key],
                                         embed_dims=32)
    if tiny.decode_head.get('mask_grounding'):
        tiny.decode_head.mask_grounding.update(num_heads=4, ffn_dims=64)
    cfg.model = tiny
    cfg.model.data_preprocessor.size = (480, 480)
    loader = cfg[split_loader]
    loader.dataset.update(
        data_root=str(root), ann_file='instances.json',
        refs_file='refs(umd).p', data_prefix=dict(img_path='images'))
    loader.update(num_workers=0, persistent_workers=False)
    cfg.work_dir = str(work_dir)
    return cfg


def test_refcocog_training_iteration(real_refer_root, tmp_path):
    """Two training iterations (batch 2) of the RefCOCOg-umd training
    config with every loss, through the runner."""
    path = [p for p in TRAIN if 'magnet_swin-b_4xb8-40e_refcocog-umd' in p][0]
    cfg = tiny_run_cfg(path, real_refer_root, tmp_path, 'train_dataloader')
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.log_processor = dict(by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    torch.manual_seed(0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2


def test_refcocog_eval_pass(real_refer_root, tmp_path):
    """tools/test.py's runner on the real RefCOCOg-umd subset (val): the
    released pipeline and metric; the tiny model keeps it CPU-sized."""
    path = [p for p in PAPER if 'refcocog-umd' in p][0]
    cfg = tiny_run_cfg(path, real_refer_root, tmp_path, 'test_dataloader')
    cfg.test_dataloader.dataset.split = 'val'
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    torch.manual_seed(0)
    metrics = Runner.from_cfg(cfg).test()
    assert metrics['val/num_samples'] > 0
    assert 0 <= metrics['val/oIoU'] <= 100
