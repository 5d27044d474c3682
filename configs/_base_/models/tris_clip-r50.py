# TRIS step 1 (ICCV'23): CLIP RN50 c4 features + EOT sentence embedding,
# bilateral prompting, image x text response maps. Weights are read from a
# local file: set clip_weights (e.g. --cfg-options clip_weights=...).
# Parity with the released code (fawnliu/TRIS; README "TRIS: parity with
# the released code"): ImageNet input statistics, no re-normalisation after
# the prompt, a fixed temperature, the released calibration foreground
# (sigmoid map x network input, resized with align_corners=True, scored
# without CLIP normalisation) and its clamps. Our EOT-keeping tokenisation
# stays (keep_eot=False is the released one).
_base_ = ['./clip_inputs.py']
data_preprocessor = dict(
    _base_.data_preprocessor,
    mean=[123.675, 116.28, 103.53],  # ImageNet, as dataset/transform.py
    std=[58.395, 57.12, 57.375])
model = dict(
    type='TRISSegmentor',
    **dict(_base_.clip_towers, data_preprocessor=data_preprocessor),
    decode_head=dict(
        type='TRISHead', in_channels=2048, text_channels=1024,
        channels=1024, alpha=0.1, beta=0.1,
        renormalize_after_prompting=False, learn_temperature=False,
        loss_cls=dict(type='ClassificationLoss', loss_weight=5.0),
        loss_cal=dict(
            type='CalibrationLoss',
            scorer=dict(arch='ViT-B-32-quickgelu', pretrained=None,
                        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
            loss_weight=2.0,
            pos_weight=1.0,
            fg_image='network_input', fg_resize='released',
            # released: negative cosines unclamped; -1 is a no-op and 0.9999
            # only keeps -log(1 - cos) finite (the fixture is unchanged).
            pos_clamp=(1e-4, 0.9999), neg_clamp=(-1.0, 0.9999))),
    # The released TRIS mask step (validate.py; README "Metrics"): relu,
    # / max, > 1e-9. Ours: ThresholdMaskDecoder(norm='minmax') (toy, PCNet).
    test_cfg=dict(mask_decoder=dict(type='TRISOfficialMaskDecoder')))
# tools/generate_pseudo_labels.py (TRIS step 2): PRMS with a frozen CLIP,
# then refinement of the selected map (IRN-like affinity random walk).
pseudo_label_cfg = dict(
    split='train',
    batch_size=16,
    prms=True,
    scorer=dict(arch='ViT-B-32-quickgelu', pretrained=None),
    refiner=dict(type='AffinityRandomWalkRefiner'))
