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
# then IRN as released (IRNet/run_sample_refer.py): seeds relu(R)/max > 0.3
# / <= 0.1, each CRF-refined; the IRN network trained on all the split's
# seeds over a frozen ImageNet ResNet-50 (set backbone.pretrained to a local
# torchvision resnet50 file); the random walk (radius 5, beta 10, 2^8 steps,
# background 0.25). Other refiners: --refiner threshold|crf|random-walk.
pseudo_label_cfg = dict(
    split='train',
    batch_size=16,
    prms=True,
    scorer=dict(arch='ViT-B-32-quickgelu', pretrained=None),
    refiner=dict(
        type='IRNRefiner',
        fg_thr=0.3,
        bg_thr=0.1,
        crf=dict(type='DenseCRFRefiner', iterations=10, pos_xy_std=3.0,
                 pos_w=3.0, bi_xy_std=50.0, bi_rgb_std=5.0, bi_w=10.0),
        gt_prob=0.7,
        network=dict(backbone=dict(depth=50, strides=(2, 2, 2, 1),
                                   pretrained=None, frozen=True)),
        # batch 32 per process (the released default; DataParallel on one
        # node); momentum 1e-4 reproduces the released PolyOptimizer, which
        # passes its weight decay into SGD's momentum slot.
        train=dict(batch_size=32, epochs=3, lr=0.1, dp_lr_mult=10.0,
                   weight_decay=1e-4, momentum=1e-4, crop_size=512,
                   rescale=(0.5, 1.5), radius=10),
        walk=dict(radius=5, beta=10.0, exp_times=8, bg_threshold=0.25)))
