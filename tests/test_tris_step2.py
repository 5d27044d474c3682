"""TRIS step 2: pixel-word attention, decoder, segmentor, pseudo labels."""
import glob
import json
import logging
import os
import os.path as osp
import pickle
from unittest import mock

import cv2
import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

TINY_CFG = osp.join(REPO, 'configs', '_base_', 'models',
                    'tris-step2_clip-tiny.py')
TEXTS = ['the man in the red shirt on the left', 'a small dog', 'blue car']


def build_model(size=(64, 64), seed=0, **overrides):
    from mmwris.registry import MODELS
    cfg = Config.fromfile(TINY_CFG).model
    cfg.data_preprocessor.size = size
    cfg.update(overrides)
    torch.manual_seed(seed)
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def model():
    return build_model().eval()


def samples(texts, size=(64, 64), ori_shapes=None, gts=None):
    out = []
    for i, text in enumerate(texts):
        sample = SegDataSample()
        sample.set_metainfo(
            dict(text=text, img_shape=size,
                 ori_shape=ori_shapes[i] if ori_shapes else size))
        if gts is not None:
            sample.gt_sem_seg = PixelData(data=gts[i][None])
        out.append(sample)
    return out


def random_gt(size, seed, ignore_rows=8):
    gen = torch.Generator().manual_seed(seed)
    gt = torch.randint(0, 2, size, generator=gen)
    gt[:ignore_rows] = 255
    return gt


# ------------------------------------------------------ pixel-word attention
def test_pixel_word_attention_respects_padding():
    from mmwris.models.layers import PixelWordAttention
    torch.manual_seed(0)
    layer = PixelWordAttention(16, 12, 8, num_heads=2).eval()
    visual = torch.randn(2, 16, 5, 6)
    words = torch.randn(2, 7, 12)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, 4:] = False
    mask[1, 6:] = False
    with torch.no_grad():
        out = layer(visual, words, mask)
        padded = words.clone()
        padded[0, 4:] = 100 * torch.randn(3, 12)
        padded[1, 6] = -50.0
        assert out.shape == visual.shape
        assert torch.equal(layer(visual, padded, mask), out)
        valid = words.clone()
        valid[0, 2] += 1.0
        changed = layer(visual, valid, mask)
        assert not torch.allclose(changed[0], out[0])
        torch.testing.assert_close(changed[1], out[1])
        empty = layer(visual, words, torch.zeros_like(mask))
        assert torch.isfinite(empty).all()


def test_pixel_word_attention_checks_shapes():
    from mmwris.models.layers import PixelWordAttention
    layer = PixelWordAttention(16, 12, 8)
    with pytest.raises(ValueError, match='one B'):
        layer(torch.randn(2, 16, 4, 4), torch.randn(3, 5, 12),
              torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match='divisible'):
        PixelWordAttention(16, 12, 10, num_heads=4)


# -------------------------------------------------------- model and head
def test_tris_pixel_attention_matches_its_formula():
    """The released layer: softmax over all L tokens (no mask) unless
    use_word_mask; residual optional; Conv1d word projections."""
    from mmwris.models.layers import TRISPixelAttention
    torch.manual_seed(0)
    layer = TRISPixelAttention(6, 5).eval()
    visual, words = torch.randn(2, 6, 3, 4), torch.randn(2, 7, 5)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[:, 5:] = False

    def inorm(x, norm):
        return F.instance_norm(x, weight=norm.weight, bias=norm.bias)

    with torch.no_grad():
        lang = words.transpose(1, 2)
        key = torch.einsum('oc,bcl->bol', layer.w_k.weight[..., 0],
                           lang) + layer.w_k.bias[:, None]
        value = torch.einsum('oc,bcl->bol', layer.w_v.weight[..., 0],
                             lang) + layer.w_v.bias[:, None]
        query = inorm(layer.w_q(visual), layer.ins_q).flatten(2)
        attn = torch.softmax(
            torch.einsum('bcp,bcl->bpl', query, key) / 6**0.5, dim=2)
        gathered = torch.einsum('bpl,bcl->bcp', attn, value).reshape(
            2, 6, 3, 4)
        gathered = inorm(layer.w_w(gathered), layer.ins_w)
        want = F.relu(layer.w_o(F.relu(layer.w_m(visual)) * gathered))
        torch.testing.assert_close(layer(visual, words), visual + want)
        layer.residual = False
        torch.testing.assert_close(layer(visual, words, mask), want)
        # padding takes part (released); masked out with use_word_mask
        noisy = words.clone()
        noisy[:, 5:] = 10 * torch.randn(2, 2, 5)
        assert not torch.allclose(layer(visual, noisy, mask), want)
        layer.use_word_mask = True
        torch.testing.assert_close(layer(visual, noisy, mask),
                                   layer(visual, words, mask))
        with pytest.raises(ValueError, match='word mask'):
            layer(visual, words)
    assert layer.w_k.weight.shape == (6, 5, 1)


RELEASED = dict(type='TRISStep2ReleasedHead',
                in_channels=(64, 128, 256, 512),
                reduce_channels=(8, 16, 32, 64),
                decoder_channels=(4, 8, 16, 32), side_channels=(4, 4, 8, 8))


def build_released(**overrides):
    """The tiny model with the released fusion and head."""
    from mmwris.registry import MODELS
    cfg = Config.fromfile(TINY_CFG).model
    cfg.data_preprocessor.size = (64, 64)
    cfg.fusion_cfg = dict(type='TRISPixelAttention')
    cfg.early_fusion = False
    cfg.decode_head = dict(RELEASED, **overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_released_head_sides_and_checks():
    model = build_released().eval()
    with torch.no_grad():
        sides = model.side_outputs(torch.randn(2, 3, 64, 64),
                                   samples(TEXTS[:2]))
    # s_4 and s_3 on the grids of c_3 and c_2, s_2 and s_1 on c_1's
    assert [tuple(s.shape) for s in sides] == [(2, 1, 4, 4), (2, 1, 8, 8),
                                               (2, 1, 16, 16),
                                               (2, 1, 16, 16)]
    assert type(model.fusions['stage1']).__name__ == 'TRISPixelAttention'
    head = model.decode_head
    assert type(head.reduce_convs[0].activate).__name__ == 'PReLU'
    assert head.side_heads[0][1].bias is None
    with pytest.raises(ValueError, match='decoder_channels'):
        build_released(decoder_channels=(4, 8, 16, 16))
    with pytest.raises(ValueError, match='same stages'):
        build_released(side_channels=(4, 4, 8))


def test_released_network_trains_with_equal_side_weights():
    from mmwris.registry import MODELS
    model = build_released(
        loss_decode=dict(type='MaskedBCELoss', reduction='pixel'))
    model.train()
    gts = [random_gt((64, 64), seed=i) for i in range(2)]
    losses = model.loss(torch.randn(2, 3, 64, 64),
                        samples(TEXTS[:2], gts=gts))
    assert sorted(losses) == ['acc_seg'] + [
        f'loss_bce_side{i}' for i in range(4)]
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    total.backward()
    assert model.fusions['stage3'].w_k.weight.grad.abs().sum() > 0
    assert model.decode_head.reduce_convs[0].conv.weight.grad is not None
    assert MODELS.get('TRISPixelAttention') is not None


def test_side_outputs_and_forward(model):
    data_samples = samples(TEXTS)
    inputs = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        sides = model.side_outputs(inputs, data_samples)
        final = model(inputs, data_samples, mode='tensor')
    assert [tuple(s.shape) for s in sides] == [(3, 1, 2, 2), (3, 1, 4, 4),
                                               (3, 1, 8, 8), (3, 1, 16, 16)]
    torch.testing.assert_close(final, sides[-1])
    assert sorted(model.fusions) == ['stage1', 'stage2', 'stage3']
    assert model.fusions['stage3'].visual_channels == 512
    assert model.fusions['stage3'].text_channels == 64


def test_late_fusion_and_bad_args():
    late = build_model(early_fusion=False, fusion_stages=(0, 3))
    with torch.no_grad():
        sides = late.side_outputs(torch.randn(2, 3, 64, 64),
                                  samples(TEXTS[:2]))
    assert len(sides) == 4 and sides[-1].shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match='fusion_stages'):
        build_model(fusion_stages=(1, 4))
    # early fusion needs the staged-encoder interface (mmseg's ResNet
    # returns its stages at once)
    from mmwris.registry import MODELS
    cfg = Config.fromfile(TINY_CFG).model
    cfg.image_encoder = dict(type='ResNetV1c', depth=18, in_channels=3)
    cfg.visual_channels = (64, 128, 256, 512)
    with pytest.raises(TypeError, match='staged-encoder interface'):
        MODELS.build(cfg)
    cfg.early_fusion = False
    assert MODELS.build(cfg).early_fusion is False


def test_text_padding_does_not_change_predictions(model):
    """Fused tokens after EOT are masked: only the expression matters."""
    inputs = torch.randn(1, 3, 64, 64)
    encoder = model.text_encoder
    with torch.no_grad():
        tokens, mask = model.encode_text(samples(['a small dog']))
        feats = model.extract_feat(inputs, tokens, mask)
        noisy = tokens.clone()
        noisy[~mask] = torch.randn_like(noisy[~mask]) * 10
        feats_noisy = model.extract_feat(inputs, noisy, mask)
    assert mask.sum() < encoder.context_length
    for a, b in zip(feats, feats_noisy):
        assert torch.equal(a, b)


def test_masked_bce_hand_computed():
    from mmwris.models.losses import masked_bce_with_logits
    logits = torch.tensor([[[2.0, -1.0], [0.5, 3.0]],
                           [[-2.0, 1.0], [4.0, -4.0]]])
    target = torch.tensor([[[1, 0], [255, 1]], [[255, 255], [0, 255]]])

    def bce(x, y):
        return -(y * np.log(1 / (1 + np.exp(-x))) +
                 (1 - y) * np.log(1 - 1 / (1 + np.exp(-x))))

    first = (bce(2.0, 1) + bce(-1.0, 0) + bce(3.0, 1)) / 3
    second = bce(4.0, 0)
    loss = masked_bce_with_logits(logits, target)
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)
    pixel = masked_bce_with_logits(logits, target, reduction='pixel')
    valid = target != 255
    expected = F.binary_cross_entropy_with_logits(
        logits[valid], target[valid].float())
    torch.testing.assert_close(pixel, expected)
    assert pixel.item() == pytest.approx(
        (3 * first + second) / 4, rel=1e-6)

    single = masked_bce_with_logits(logits[:1], target[:1])
    torch.testing.assert_close(
        single, F.binary_cross_entropy_with_logits(
            logits[:1][valid[:1]], target[:1][valid[:1]].float()))
    changed = logits.clone()
    changed[0, 1, 0] = -30.0
    changed[1, 0] = 50.0
    assert torch.equal(masked_bce_with_logits(changed, target), loss)

    no_valid = torch.full_like(target, 255)
    no_valid[0] = target[0]
    assert masked_bce_with_logits(logits, no_valid).item() == pytest.approx(
        first / 2, rel=1e-6)
    assert masked_bce_with_logits(logits, torch.full_like(target, 255)) == 0
    with pytest.raises(ValueError, match='0, 1 or 255'):
        masked_bce_with_logits(logits, target.masked_fill(target == 1, 2))


def test_loss_ignores_255(model):
    inputs = torch.randn(2, 3, 64, 64)
    gts = [random_gt((64, 64), seed) for seed in (1, 2)]
    data_samples = samples(TEXTS[:2], gts=gts)
    with torch.no_grad():
        losses = model.loss(inputs, data_samples)
        sides = model.side_outputs(inputs, data_samples)
    names = [k for k in losses if k.startswith('loss')]
    assert names == [f'loss_bce_side{i}' for i in range(4)]
    target = torch.stack(gts)
    valid = target != 255
    for i, weight in enumerate((0.4, 0.4, 0.4, 1.0)):
        logits = F.interpolate(sides[i], size=(64, 64), mode='bilinear',
                               align_corners=False)[:, 0]
        expected = torch.stack([
            F.binary_cross_entropy_with_logits(
                logits[b][valid[b]], target[b][valid[b]].float())
            for b in range(2)
        ]).mean()
        torch.testing.assert_close(losses[f'loss_bce_side{i}'],
                                   weight * expected)
    assert 0 <= losses['acc_seg'] <= 1

    # Gradients reach no ignored pixel of the upsampled final logits.
    final = F.interpolate(sides[-1], size=(64, 64), mode='bilinear',
                          align_corners=False)[:, 0].requires_grad_()
    from mmwris.models.losses import masked_bce_with_logits
    masked_bce_with_logits(final, target).backward()
    assert (final.grad[~valid] == 0).all()
    assert (final.grad[valid] != 0).any()


def test_train_step_updates_parameters():
    model = build_model(seed=1)
    model.train()
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8,
                            generator=gen) for _ in range(2)]
    data = dict(
        inputs=inputs,
        data_samples=samples(
            TEXTS[:2], gts=[random_gt((64, 64), s) for s in (3, 4)]))
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    watched = {
        name: param.detach().clone()
        for name, param in model.named_parameters()
        if name in ('fusions.stage1.query.0.weight',
                    'fusions.stage3.gate.0.weight',
                    'decode_head.side_convs.3.1.weight',
                    'decode_head.blocks.0.0.conv.weight',
                    'image_encoder.visual.conv1.weight',
                    'text_encoder.token_embedding.weight')
    }
    assert len(watched) == 6
    log_vars = model.train_step(data, optim)
    assert set(log_vars) >= {'loss', 'acc_seg'} | {
        f'loss_bce_side{i}' for i in range(4)}
    assert torch.isfinite(log_vars['loss'])
    params = dict(model.named_parameters())
    for name, before in watched.items():
        assert not torch.equal(params[name], before), name

    # DDP (find_unused_parameters=False) needs a gradient for every
    # trainable parameter; the unused sentence projection is frozen.
    data = model.data_preprocessor(data, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    no_grad = [name for name, param in model.named_parameters()
               if param.requires_grad and param.grad is None]
    assert no_grad == []
    assert not model.text_encoder.text_projection.requires_grad


def test_predict_at_original_size(model):
    data = dict(
        inputs=[torch.randint(0, 256, (3, 64, 48), dtype=torch.uint8)
                for _ in range(2)],
        data_samples=samples(TEXTS[:2], size=(64, 48),
                             ori_shapes=[(100, 75), (32, 24)]))
    with torch.no_grad():
        results = model.test_step(data)
    for result, ori in zip(results, [(100, 75), (32, 24)]):
        logits = result.seg_logits.data
        assert logits.shape == (1, *ori)
        assert 0 <= logits.min() and logits.max() <= 1
        pred = result.pred_sem_seg.data
        assert pred.shape == (1, *ori)
        assert torch.equal(pred, (logits >= 0.5).long())
        assert result.response_norm == 'sigmoid'
        assert result.mask_threshold == 0.5
        assert type(model.mask_decoder).__name__ == 'ThresholdMaskDecoder'


# ------------------------------------------------------------ pseudo labels
def train_refs(root):
    with open(root / 'refs(umd).p', 'rb') as f:
        refs = pickle.load(f)
    coco = json.loads((root / 'instances.json').read_text())
    images = {img['id']: img for img in coco['images']}
    return [(ref['ref_id'], images[ref['image_id']]) for ref in refs
            if ref['split'] == 'train']


def write_pseudo_labels(root, out_dir):
    labels = {}
    rng = np.random.default_rng(0)
    (out_dir / 'masks').mkdir(parents=True)
    for ref_id, img in train_refs(root):
        label = rng.choice(np.array([0, 1, 255], dtype=np.uint8),
                           size=(img['height'], img['width']))
        cv2.imwrite(str(out_dir / 'masks' / f'{ref_id}.png'), label)
        labels[ref_id] = label
    return labels


def build_dataset(root, pipeline_scale=None, **kwargs):
    from mmwris.registry import DATASETS
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadRISAnnotations')]
    if pipeline_scale:
        pipeline.append(
            dict(type='Resize', scale=pipeline_scale, keep_ratio=False))
    pipeline.append(dict(type='PackRISInputs'))
    return DATASETS.build(
        dict(type='RefCOCODataset', data_root=str(root),
             refs_file='refs(umd).p', ann_file='instances.json',
             data_prefix=dict(img_path='images'), split='train',
             pipeline=pipeline, **kwargs))


def test_dataset_reads_pseudo_labels(real_refer_root, tmp_path):
    labels = write_pseudo_labels(real_refer_root, tmp_path / 'pl')
    dataset = build_dataset(real_refer_root,
                            pseudo_label_dir=str(tmp_path / 'pl'))
    assert len(dataset) == len(labels) == 5
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert info['pseudo_label_path'] == str(
            tmp_path / 'pl' / 'masks' / f'{info["ref_id"]}.png')
        sample = dataset[i]['data_samples']
        np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(),
                                      labels[sample.ref_id])
        assert len(sample.gt_bbox) == 4

    resized = build_dataset(real_refer_root, pipeline_scale=(64, 48),
                            pseudo_label_dir=str(tmp_path / 'pl'))
    sample = resized[0]['data_samples']
    gt = sample.gt_sem_seg.data[0].numpy()
    assert gt.shape == (48, 64)
    assert set(np.unique(gt)) == {0, 1, 255}
    expected = mmcv.imresize(labels[sample.ref_id], (64, 48),
                             interpolation='nearest')
    np.testing.assert_array_equal(gt, expected)

    gt_dataset = build_dataset(real_refer_root)
    sample = gt_dataset[0]['data_samples']
    assert set(np.unique(sample.gt_sem_seg.data.numpy())) <= {0, 1}


def test_dataset_missing_pseudo_labels(real_refer_root, tmp_path):
    write_pseudo_labels(real_refer_root, tmp_path / 'pl')
    removed = [ref_id for ref_id, _ in train_refs(real_refer_root)][1:3]
    for ref_id in removed:
        (tmp_path / 'pl' / 'masks' / f'{ref_id}.png').unlink()
    with pytest.raises(FileNotFoundError) as error:
        build_dataset(real_refer_root, pseudo_label_dir=str(tmp_path / 'pl'))
    message = str(error.value)
    assert f'ref_ids {removed}' in message
    assert str(tmp_path / 'pl' / 'masks') in message
    assert '2 of 5' in message

    with mock.patch('mmwris.datasets.refcoco.print_log') as log:
        dataset = build_dataset(real_refer_root,
                                pseudo_label_dir=str(tmp_path / 'pl'),
                                skip_missing_pseudo_labels=True)
    assert len(dataset) == 3
    kept = {dataset.get_data_info(i)['ref_id'] for i in range(3)}
    assert not kept & set(removed)
    log.assert_called_once()
    assert 'Skipped 2 of 5' in log.call_args.args[0]
    assert log.call_args.kwargs['level'] == logging.WARNING

    for path in glob.glob(str(tmp_path / 'pl' / 'masks' / '*.png')):
        os.remove(path)
    with pytest.raises(ValueError, match='No ref'):
        build_dataset(real_refer_root, pseudo_label_dir=str(tmp_path / 'pl'),
                      skip_missing_pseudo_labels=True)


def test_missing_ids_listing_is_truncated(real_refer_root, tmp_path):
    from mmwris.datasets import RefCOCODataset
    dataset = build_dataset(real_refer_root)
    dataset.pseudo_label_dir = str(tmp_path)
    infos = [dict(ref_id=i) for i in range(25)]
    with pytest.raises(FileNotFoundError,
                       match=r'25 of 25 .*19\] \.\.\. \(5 more\)'):
        RefCOCODataset._attach_pseudo_labels(dataset, infos)


def test_pseudo_label_errors(real_refer_root, tmp_path):
    labels = write_pseudo_labels(real_refer_root, tmp_path / 'pl')
    dataset = build_dataset(real_refer_root,
                            pseudo_label_dir=str(tmp_path / 'pl'))
    ref_id = dataset.get_data_info(0)['ref_id']
    path = tmp_path / 'pl' / 'masks' / f'{ref_id}.png'
    height, width = labels[ref_id].shape
    cv2.imwrite(str(path), np.zeros((height + 1, width), np.uint8))
    with pytest.raises(ValueError, match=f'{path}.*size'):
        dataset[0]
    cv2.imwrite(str(path), np.full((height, width), 128, np.uint8))
    with pytest.raises(ValueError, match=f'{path}.*values'):
        dataset[0]
    cv2.imwrite(str(path), np.zeros((height, width, 3), np.uint8))
    with pytest.raises(ValueError, match=f'{path}.*single-channel'):
        dataset[0]
    with pytest.raises(ValueError, match='training datasets'):
        build_dataset(real_refer_root, pseudo_label_dir=str(tmp_path / 'pl'),
                      test_mode=True)


# ------------------------------------------------------------------ configs
STEP2_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'tris', 'tris-step2_*[0-9]e_*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'tris', 'tris-step2_*toyrefer*.py')))


def test_step2_configs_parse():
    assert len(STEP2_CONFIGS) == 6
    for path in STEP2_CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.model.type == 'TRISStep2Segmentor'
        assert cfg.model.fusion_stages == (1, 2, 3)
        decoder, metric = cfg.model.test_cfg.mask_decoder, cfg.test_evaluator
        if 'toyrefer' in path:  # our evaluation
            assert decoder.norm == 'sigmoid' and 'protocol' not in metric
        else:  # the released one, on the logits
            assert decoder.type == 'TRISOfficialMaskDecoder'
            assert decoder.relu is False and metric.protocol == 'tris'
        train = cfg.train_dataloader
        assert train.dataset.pseudo_label_dir
        assert 'pseudo_label_dir' not in cfg.val_dataloader.dataset
        assert 'pseudo_label_dir' not in cfg.test_dataloader.dataset
        if 'toyrefer' in path:
            # our network (the state-dict layout of the golden runs)
            assert cfg.model.decode_head.type == 'TRISStep2Head'
            assert cfg.model.early_fusion is True
            assert 'type' not in cfg.model.fusion_cfg
            assert train.batch_size == 32
            assert cfg.train_cfg.max_iters == 2000
            assert cfg.model.data_preprocessor.size == (128, 128)
            assert cfg.randomness.seed == 0
        else:
            assert train.batch_size == 48
            assert cfg.train_cfg.max_epochs == 15
            # the released network and its (constant) learning rate
            assert cfg.model.decode_head.type == 'TRISStep2ReleasedHead'
            assert cfg.model.decode_head.aux_weights == (1.0, ) * 4
            assert cfg.model.fusion_cfg.type == 'TRISPixelAttention'
            assert cfg.model.early_fusion is False
            assert cfg.param_scheduler == []
            assert cfg.model.data_preprocessor.size == (320, 320)
            assert cfg.model.text_encoder.context_length == 20
            assert cfg.model.decode_head.in_channels == (256, 512, 1024,
                                                         2048)
            name = osp.basename(path).split('15e_')[1].replace(
                '-320x320.py', '')
            assert train.dataset.pseudo_label_dir.endswith(name)


def test_tiny_config_builds():
    from mmwris.registry import MODELS
    path = [p for p in STEP2_CONFIGS if 'toyrefer' in p][0]
    cfg = Config.fromfile(path)
    assert cfg.model.image_encoder.arch == cfg.tiny_clip
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'TRISStep2Segmentor'
    assert model.mask_decoder.norm == 'sigmoid'
    assert model.image_encoder.out_channels == [64, 128, 256, 512]
