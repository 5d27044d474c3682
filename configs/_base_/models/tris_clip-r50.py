# TRIS step 1 (ICCV'23): CLIP RN50 c4 features + EOT sentence embedding,
# bilateral prompting, image x text response maps. Weights are read from a
# local file: set clip_weights (e.g. --cfg-options clip_weights=...).
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
    type='TRISSegmentor',
    data_preprocessor=data_preprocessor,
    image_encoder=dict(
        type='CLIPVisionEncoder', arch=clip_arch, pretrained=clip_weights,
        out_indices=(0, 1, 2, 3)),
    text_encoder=dict(
        type='CLIPTextEncoder', arch=clip_arch, pretrained=clip_weights,
        context_length=20),
    decode_head=dict(
        type='TRISHead', in_channels=2048, text_channels=1024,
        channels=1024, alpha=0.1, beta=0.1),
    loss_cls=dict(type='ClassificationLoss', loss_weight=5.0),
    loss_cal=dict(
        type='CalibrationLoss',
        scorer=dict(arch='ViT-B-32-quickgelu', pretrained=None),
        loss_weight=2.0,
        pos_weight=1.0),
    test_cfg=dict(mask_threshold=0.5, response_norm='minmax'))
# tools/generate_pseudo_labels.py (TRIS step 2): PRMS with a frozen CLIP,
# then refinement of the selected map (IRN-like affinity random walk).
pseudo_label_cfg = dict(
    split='train',
    batch_size=16,
    prms=True,
    scorer=dict(arch='ViT-B-32-quickgelu', pretrained=None),
    refiner=dict(type='AffinityRandomWalkRefiner'))
