"""The shared pieces every method plugs into: staged encoders, mask
decoders, heads that own their losses, registered losses."""
import pytest
import torch
import torch.nn.functional as F
from mmseg.structures import SegDataSample

from mmwris.registry import MODELS

RN_ARCH = dict(
    embed_dim=64,
    vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=64),
    text_cfg=dict(context_length=20, vocab_size=49408, width=64, heads=2,
                  layers=1))
VIT_ARCH = dict(
    embed_dim=64,
    vision_cfg=dict(layers=4, width=32, head_width=16, patch_size=16,
                    image_size=64),
    text_cfg=dict(context_length=20, vocab_size=49408, width=64, heads=2,
                  layers=1))


# --------------------------------------------------------- staged encoders
@pytest.mark.parametrize('arch,out_indices', [(RN_ARCH, (0, 1, 2, 3)),
                                              (RN_ARCH, (1, 3)),
                                              (VIT_ARCH, (0, 1, 3))])
def test_clip_encoder_stages_reproduce_forward(arch, out_indices):
    from mmwris.models.foundation import CLIPVisionEncoder
    torch.manual_seed(0)
    encoder = CLIPVisionEncoder(arch, out_indices=out_indices).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outs = encoder(images)
        state = encoder.forward_stem(images)
        for i in range(encoder.num_stages):
            state = encoder.forward_stage(i, state)
            feature = encoder.stage_feature(i, state)
            torch.testing.assert_close(feature, outs[i])
            assert feature.shape[1] == encoder.out_channels[i]
            # replacing a feature by itself changes nothing
            state = encoder.replace_feature(i, state, feature)
    assert encoder.num_stages == len(out_indices) == len(outs)


def test_replaced_feature_feeds_the_next_stage():
    from mmwris.models.foundation import CLIPVisionEncoder
    torch.manual_seed(0)
    for arch in (RN_ARCH, VIT_ARCH):
        encoder = CLIPVisionEncoder(arch, out_indices=(0, 1)).eval()
        images = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            state = encoder.forward_stage(0, encoder.forward_stem(images))
            plain = encoder.stage_feature(
                1, encoder.forward_stage(1, state))
            changed = encoder.replace_feature(
                0, state, encoder.stage_feature(0, state) * 2)
            fused = encoder.stage_feature(1,
                                          encoder.forward_stage(1, changed))
        assert not torch.allclose(plain, fused)


def test_step2_early_fusion_runs_on_a_clip_vit():
    """The step-2 network fuses stage by stage on any staged encoder."""
    from mmengine.config import Config
    from conftest import REPO
    cfg = Config.fromfile(
        f'{REPO}/configs/_base_/models/tris-step2_clip-tiny.py').model
    cfg.data_preprocessor.size = (64, 64)
    cfg.image_encoder.arch = VIT_ARCH
    cfg.image_encoder.out_indices = (0, 1, 2, 3)
    cfg.decode_head.in_channels = (32, 32, 32, 32)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    sample = SegDataSample(metainfo=dict(text='the red circle'))
    with torch.no_grad():
        sides = model.side_outputs(torch.randn(1, 3, 64, 64), [sample])
    assert [s.shape[-1] for s in sides] == [4, 4, 4, 4]


# ------------------------------------------------------------ mask decoders
def _sample(ori=(6, 8), img=(4, 4)):
    return SegDataSample(metainfo=dict(ori_shape=ori, img_shape=img,
                                       batch_input_shape=img))


def test_threshold_decoder_minmax():
    decoder = MODELS.build(dict(type='ThresholdMaskDecoder', norm='minmax',
                                threshold=0.5))
    response = torch.tensor([[[0.0, 1.0], [3.0, 4.0]]])
    sample = _sample(ori=(2, 2), img=(2, 2))
    decoder.decode_batch(response[None], [sample])
    torch.testing.assert_close(sample.seg_logits.data,
                               response / 4.0, atol=1e-5, rtol=0)
    assert sample.pred_sem_seg.data.tolist() == [[[0, 0], [1, 1]]]
    assert sample.mask_threshold == 0.5 and sample.response_norm == 'minmax'


def test_tris_official_decoder_matches_the_released_protocol():
    """Released order: up to the input (align_corners=False) -> relu ->
    crop -> up to the original size (align_corners=True) -> / (max + 1e-5)
    -> > 1e-9."""
    decoder = MODELS.build(dict(type='TRISOfficialMaskDecoder'))
    torch.manual_seed(0)
    response = torch.randn(2, 1, 4, 4)
    # sample 1: a bottom/right padded input whose valid part is 6 x 5
    samples = [_sample(ori=(6, 8), img=(8, 8)),
               SegDataSample(metainfo=dict(
                   ori_shape=(5, 3), img_shape=(6, 5),
                   batch_input_shape=(8, 8), padding_size=[0, 3, 0, 2]))]
    decoder.decode_batch(response, samples)
    for i, sample in enumerate(samples):
        net = F.interpolate(response[i:i + 1], size=(8, 8), mode='bilinear',
                            align_corners=False).relu()
        img_h, img_w = sample.img_shape
        pred = F.interpolate(net[..., :img_h, :img_w],
                             size=sample.ori_shape, mode='bilinear',
                             align_corners=True)[0]
        expected = pred / (pred.max() + 1e-5)
        torch.testing.assert_close(sample.seg_logits.data, expected)
        assert torch.equal(sample.pred_sem_seg.data,
                           (expected > 1e-9).long())
        # relu after the first up-sampling: not the mask of relu-first
        relu_first = F.interpolate(
            response[i:i + 1].relu(), size=sample.ori_shape,
            mode='bilinear', align_corners=True)[0]
        assert not torch.equal(sample.pred_sem_seg.data,
                               (relu_first > 0).long())
    # a map without a positive pixel is empty, not NaN
    sample = _sample()
    decoder.decode_batch(-torch.ones(1, 1, 4, 4), [sample])
    assert sample.pred_sem_seg.data.sum() == 0
    assert torch.isfinite(sample.seg_logits.data).all()
    # step 2 (relu=False): all-negative logits / negative max -> all
    # foreground (the released quirk)
    decoder = MODELS.build(dict(type='TRISOfficialMaskDecoder', relu=False))
    sample = _sample()
    logits = -torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    decoder.decode_batch(logits, [sample])
    assert sample.pred_sem_seg.data.all()
    up = F.interpolate(F.interpolate(logits, size=(4, 4), mode='bilinear',
                                     align_corners=False),
                       size=(6, 8), mode='bilinear', align_corners=True)[0]
    torch.testing.assert_close(sample.seg_logits.data,
                               up / (up.max() + 1e-5))


def test_decoder_removes_padding():
    decoder = MODELS.build(dict(type='ThresholdMaskDecoder', norm=None))
    response = torch.zeros(1, 1, 4, 4)
    response[..., :2, :] = 1.0          # the valid top half
    sample = SegDataSample(metainfo=dict(
        ori_shape=(2, 4), img_shape=(2, 4), batch_input_shape=(4, 4),
        padding_size=[0, 0, 0, 2]))
    decoder.decode_batch(response, [sample])
    assert sample.pred_sem_seg.data.shape == (1, 2, 4)
    assert sample.pred_sem_seg.data.all()


def test_legacy_test_cfg_keys_point_to_mask_decoder():
    from mmwris.models.segmentors import CenterPriorSegmentor
    with pytest.raises(ValueError, match='mask_decoder'):
        CenterPriorSegmentor(test_cfg=dict(mask_threshold=0.3))
    model = CenterPriorSegmentor(test_cfg=dict(mask_decoder=dict(
        type='TRISOfficialMaskDecoder')))
    assert type(model.mask_decoder).__name__ == 'TRISOfficialMaskDecoder'


# ----------------------------------------------------- heads and losses
def test_masked_bce_loss_is_registered():
    loss = MODELS.build(dict(type='MaskedBCELoss', loss_weight=2.0))
    logits = torch.zeros(1, 2, 2)
    target = torch.tensor([[[0, 1], [255, 1]]])
    assert loss.loss_name == 'loss_bce'
    torch.testing.assert_close(loss(logits, target),
                               2.0 * torch.tensor(2.0).log())
    torch.testing.assert_close(loss(logits, target, 1.0),
                               torch.tensor(2.0).log())
    with pytest.raises(ValueError, match='reduction'):
        MODELS.build(dict(type='MaskedBCELoss', reduction='mean'))


def test_tris_head_owns_its_losses():
    head = MODELS.build(dict(type='TRISHead', in_channels=8,
                             text_channels=6, channels=4))
    visual = torch.randn(3, 8, 2, 2)
    sentence = torch.randn(5, 6)
    samples = [SegDataSample(metainfo=dict(text=f't{i}')) for i in range(3)]
    losses = head.loss(visual, sentence, samples, offset=2)
    assert set(losses) == {'loss_cls', 'acc_cls'}
    maps = head(visual, sentence)
    losses_again, own = head.classification_losses(maps, 2)
    torch.testing.assert_close(losses['loss_cls'], losses_again['loss_cls'])
    torch.testing.assert_close(own, maps[torch.arange(3), torch.arange(3) + 2])
    assert head.predict(visual, sentence[:3]).shape == (3, 1, 2, 2)
    with pytest.raises(ValueError, match='RGB images'):
        MODELS.build(dict(type='TRISHead', in_channels=8, text_channels=6,
                          channels=4, loss_cal=dict(
                              type='CalibrationLoss',
                              scorer=dict(arch=VIT_ARCH)))).loss(
                                  visual, sentence, samples)


def test_staged_swin_reproduces_mmseg_forward():
    swin_cfg = dict(type='StagedSwinTransformer', embed_dims=16,
                    depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4),
                    window_size=2, pretrain_img_size=64)
    torch.manual_seed(0)
    encoder = MODELS.build(swin_cfg).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outs = encoder(images)
        staged = encoder.forward_staged(images, range(4))
    assert encoder.num_stages == 4
    assert encoder.out_channels == [16, 32, 64, 128]
    for a, b in zip(outs, staged):
        torch.testing.assert_close(a, b)
    # a plain mmseg Swin checkpoint loads (same keys)
    plain = MODELS.build(dict(swin_cfg, type='SwinTransformer'))
    encoder.load_state_dict(plain.state_dict(), strict=True)
