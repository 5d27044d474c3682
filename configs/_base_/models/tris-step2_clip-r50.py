# TRIS step 2 (ICCV'23): a text-conditioned segmentation network trained on
# the step-1 pseudo masks. CLIP RN50 image and text towers, pixel-word
# attention (LAVT's PWAM + language gate) after the last three image stages,
# each fused stage feeding the next (early fusion), a top-down decoder with
# one side output per stage (deep supervision, BCE, 255 ignored).
# Weights are read from a local file: set clip_weights.
clip_arch = 'RN50-quickgelu'  # OpenAI weights use QuickGELU
clip_weights = None
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709, 116.7460, 104.0937],
    std=[68.5005, 66.6322, 70.3232],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(320, 320))
model = dict(
    type='TRISStep2Segmentor',
    data_preprocessor=data_preprocessor,
    image_encoder=dict(
        type='CLIPVisionEncoder', arch=clip_arch, pretrained=clip_weights,
        out_indices=(0, 1, 2, 3)),
    text_encoder=dict(
        type='CLIPTextEncoder', arch=clip_arch, pretrained=clip_weights,
        context_length=20),
    fusion_stages=(1, 2, 3),
    fusion_cfg=dict(channels=None, num_heads=1, dropout=0.0),
    early_fusion=True,
    decode_head=dict(
        type='TRISStep2Head', in_channels=(256, 512, 1024, 2048),
        channels=256, num_convs=2, norm_cfg=dict(type='BN')),
    aux_weights=(0.4, 0.4, 0.4, 1.0),
    loss_reduction='sample',
    ignore_index=255,
    test_cfg=dict(mask_threshold=0.5, response_norm='sigmoid'))
