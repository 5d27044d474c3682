# TRIS step 2 (ICCV'23): a text-conditioned segmentation network trained on
# the step-1 pseudo masks. The released network (fawnliu/TRIS
# model/model_stage2.py): CLIP RN50 image and text towers; late fusion:
# c_k + PixelAttention(c_k, all 20 word tokens, no mask) on c2..c4, each from
# the unfused backbone; 3x3 conv-BN-PReLU reduce (64..512) and top-down sum
# decoder (32..256); one side output per stage, plain mean BCE, weights 1.
# Our network (LAVT's PWAM + gate, early fusion, concat decoder) is
# ./tris-step2-pwam_clip-r50.py. Weights from a local file: set clip_weights.
_base_ = ['./clip_inputs.py']
# ImageNet input statistics, as the released step 2 (dataset/transform.py).
data_preprocessor = dict(
    _base_.data_preprocessor,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375])
model = dict(
    type='TRISStep2Segmentor',
    **dict(_base_.clip_towers, data_preprocessor=data_preprocessor),
    fusion_stages=(1, 2, 3),
    fusion_cfg=dict(
        type='TRISPixelAttention', residual=True, use_word_mask=False),
    early_fusion=False,
    decode_head=dict(
        type='TRISStep2ReleasedHead', in_channels=(256, 512, 1024, 2048),
        reduce_channels=(64, 128, 256, 512),
        decoder_channels=(32, 64, 128, 256), side_channels=(32, 32, 64, 64),
        norm_cfg=dict(type='BN'), act_cfg=dict(type='PReLU'),
        loss_decode=dict(
            type='MaskedBCELoss', reduction='pixel', ignore_index=255),
        aux_weights=(1.0, 1.0, 1.0, 1.0)),
    # The released mask step on the logits (no relu: all-negative logits
    # give a full mask, as released). Ours: ThresholdMaskDecoder(sigmoid).
    test_cfg=dict(mask_decoder=dict(
        type='TRISOfficialMaskDecoder', relu=False)))
