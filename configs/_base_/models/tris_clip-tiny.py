# A tiny randomly initialised CLIP (4.6 M parameters) for CPU runs on the
# toy data: TRIS step 1 learned from scratch. c3 features (stride 16, 8x8
# at 128x128) give a finer response grid than c4 at this input size. The
# calibration loss needs a *trained* frozen CLIP scorer, which a from-scratch
# toy run does not have, so it is off here (see the RN50 configs).
tiny_clip = dict(
    embed_dim=64,
    vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=128),
    text_cfg=dict(
        context_length=20, vocab_size=49408, width=64, heads=2, layers=2))
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709, 116.7460, 104.0937],
    std=[68.5005, 66.6322, 70.3232],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(128, 128))
model = dict(
    type='TRISSegmentor',
    data_preprocessor=data_preprocessor,
    image_encoder=dict(
        type='CLIPVisionEncoder', arch=tiny_clip, out_indices=(0, 1, 2, 3)),
    text_encoder=dict(
        type='CLIPTextEncoder', arch=tiny_clip, context_length=20),
    decode_head=dict(
        type='TRISHead', in_channels=256, text_channels=64, channels=64,
        alpha=0.1, beta=0.1),
    feature_index=2,
    loss_cls=dict(type='ClassificationLoss', loss_weight=5.0),
    loss_cal=None,
    test_cfg=dict(mask_threshold=0.5, response_norm='minmax'))
