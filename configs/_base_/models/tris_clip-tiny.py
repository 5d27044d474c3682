# A tiny randomly initialised CLIP (4.6 M parameters) for CPU runs on the
# toy data: TRIS step 1 learned from scratch. c3 features (stride 16, 8x8
# at 128x128) give a finer response grid than c4 at this input size (the
# unused last stage is dropped, which DDP requires). The
# calibration loss needs a *trained* frozen CLIP scorer, which a from-scratch
# toy run does not have, so it is off here (see the RN50 configs).
# The toy keeps our choices (CLIP pixel statistics, cosine responses, a
# learned temperature), not the released-TRIS parity options of
# tris_clip-r50.py.
_base_ = ['./tris_clip-r50.py', './clip_tiny.py']
data_preprocessor = dict(
    mean=[122.7709, 116.7460, 104.0937], std=[68.5005, 66.6322, 70.3232])
model = dict(
    data_preprocessor=dict(data_preprocessor, size=(128, 128)),
    image_encoder=dict(
        arch=dict(_base_.tiny_clip, _delete_=True), out_indices=(0, 1, 2)),
    text_encoder=dict(arch=dict(_base_.tiny_clip, _delete_=True)),
    decode_head=dict(
        _delete_=True,
        type='TRISHead', in_channels=256, text_channels=64, channels=64,
        alpha=0.1, beta=0.1,
        loss_cls=dict(type='ClassificationLoss', loss_weight=5.0),
        loss_cal=None),
    feature_index=2,
    # Our mask step (the RN50 base has the released one).
    test_cfg=dict(mask_decoder=dict(
        _delete_=True, type='ThresholdMaskDecoder', norm='minmax',
        threshold=0.5)))
# No trained CLIP scorer for PRMS on the from-scratch toy model; the dense
# CRF gave the best pseudo labels on the toy data (README).
pseudo_label_cfg = dict(
    prms=False, scorer=None,
    refiner=dict(_delete_=True, type='DenseCRFRefiner'))
