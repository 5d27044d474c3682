# Our TRIS step-2 network (not the released one of ./tris-step2_clip-r50.py):
# pixel-word attention (LAVT's PWAM + language gate, padding masked) after
# the last three image stages, each fused stage feeding the next (early
# fusion), a top-down concat decoder with one side output per stage (deep
# supervision, per-sample BCE, 255 ignored, weights 0.4/0.4/0.4/1).
_base_ = ['./tris-step2_clip-r50.py']
model = dict(
    fusion_cfg=dict(_delete_=True, channels=None, num_heads=1, dropout=0.0),
    early_fusion=True,
    decode_head=dict(
        _delete_=True,
        type='TRISStep2Head', in_channels=(256, 512, 1024, 2048),
        channels=256, num_convs=2, norm_cfg=dict(type='BN'),
        loss_decode=dict(
            type='MaskedBCELoss', reduction='sample', ignore_index=255),
        aux_weights=(0.4, 0.4, 0.4, 1.0)),
    # CLIP input statistics and the sigmoid >= 0.5 mask of our network.
    data_preprocessor=_base_.clip_towers.data_preprocessor,
    test_cfg=dict(mask_decoder=dict(
        _delete_=True, type='ThresholdMaskDecoder', norm='sigmoid',
        threshold=0.5)))
