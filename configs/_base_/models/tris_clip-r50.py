# TRIS step 1 (ICCV'23): CLIP RN50 c4 features + EOT sentence embedding,
# bilateral prompting, image x text response maps. Weights are read from a
# local file: set clip_weights (e.g. --cfg-options clip_weights=...).
_base_ = ['./clip_inputs.py']
model = dict(
    type='TRISSegmentor',
    **_base_.clip_towers,
    decode_head=dict(
        type='TRISHead', in_channels=2048, text_channels=1024,
        channels=1024, alpha=0.1, beta=0.1,
        loss_cls=dict(type='ClassificationLoss', loss_weight=5.0),
        loss_cal=dict(
            type='CalibrationLoss',
            scorer=dict(arch='ViT-B-32-quickgelu', pretrained=None),
            loss_weight=2.0,
            pos_weight=1.0)),
    # The mask of a response: min-max normalised, >= 0.5 (the released
    # TRIS evaluation: mask_decoder=dict(type='TRISOfficialMaskDecoder')).
    test_cfg=dict(mask_decoder=dict(
        type='ThresholdMaskDecoder', norm='minmax', threshold=0.5)))
# tools/generate_pseudo_labels.py (TRIS step 2): PRMS with a frozen CLIP,
# then refinement of the selected map (IRN-like affinity random walk).
pseudo_label_cfg = dict(
    split='train',
    batch_size=16,
    prms=True,
    scorer=dict(arch='ViT-B-32-quickgelu', pretrained=None),
    refiner=dict(type='AffinityRandomWalkRefiner'))
