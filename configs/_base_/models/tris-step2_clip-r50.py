# TRIS step 2 (ICCV'23): a text-conditioned segmentation network trained on
# the step-1 pseudo masks. CLIP RN50 image and text towers, pixel-word
# attention (LAVT's PWAM + language gate) after the last three image stages,
# each fused stage feeding the next (early fusion), a top-down decoder with
# one side output per stage (deep supervision, BCE, 255 ignored).
# Weights are read from a local file: set clip_weights.
_base_ = ['./clip_inputs.py']
model = dict(
    type='TRISStep2Segmentor',
    **_base_.clip_towers,
    fusion_stages=(1, 2, 3),
    fusion_cfg=dict(channels=None, num_heads=1, dropout=0.0),
    early_fusion=True,
    decode_head=dict(
        type='TRISStep2Head', in_channels=(256, 512, 1024, 2048),
        channels=256, num_convs=2, norm_cfg=dict(type='BN'),
        loss_decode=dict(
            type='MaskedBCELoss', reduction='sample', ignore_index=255),
        aux_weights=(0.4, 0.4, 0.4, 1.0)),
    test_cfg=dict(mask_decoder=dict(
        type='ThresholdMaskDecoder', norm='sigmoid', threshold=0.5)))
