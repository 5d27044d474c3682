"""The MagNet eval configs (released protocol): the input transform
against the released one (official fixture), the mask decoder's output
size, and one evaluation pass of the RefCOCOg-umd config on the real refer
fixture (tiny random model in place of Swin-B / BERT-base)."""
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO
from mmwris.registry import MODELS, TRANSFORMS
from mmwris.structures import RISDataSample

PAPER = sorted(glob.glob(osp.join(REPO, 'configs', 'magnet',
                                  'magnet_swin-b_*.py')))
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


def test_refcocog_eval_pass(real_refer_root, tmp_path):
    """tools/test.py's runner on the real RefCOCOg-umd subset (val): the
    released pipeline and metric; the tiny model keeps it CPU-sized."""
    path = [p for p in PAPER if 'refcocog-umd' in p][0]
    cfg = Config.fromfile(path)
    test_cfg = copy.deepcopy(cfg.model.test_cfg)
    cfg.model = Config.fromfile(TINY_MODEL).model
    cfg.model.test_cfg = test_cfg
    cfg.model.data_preprocessor.size = (480, 480)
    cfg.test_dataloader.dataset.update(
        data_root=str(real_refer_root), ann_file='instances.json',
        refs_file='refs(umd).p', data_prefix=dict(img_path='images'),
        split='val')
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.work_dir = str(tmp_path)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    torch.manual_seed(0)
    metrics = Runner.from_cfg(cfg).test()
    assert metrics['val/num_samples'] > 0
    assert 0 <= metrics['val/oIoU'] <= 100
