# A tiny randomly initialised CLIP (4.6 M parameters) for CPU runs on the
# toy data: TRIS step 1 learned from scratch. c3 features (stride 16, 8x8
# at 128x128) give a finer response grid than c4 at this input size (the
# unused last stage is dropped, which DDP requires). The
# calibration loss needs a *trained* frozen CLIP scorer, which a from-scratch
# toy run does not have, so it is off here (see the RN50 configs).
_base_ = ['./tris_clip-r50.py', './clip_tiny.py']
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    image_encoder=dict(
        arch=dict(_base_.tiny_clip, _delete_=True), out_indices=(0, 1, 2)),
    text_encoder=dict(arch=dict(_base_.tiny_clip, _delete_=True)),
    decode_head=dict(
        in_channels=256, text_channels=64, channels=64, loss_cal=None),
    feature_index=2)
# No trained CLIP scorer for PRMS on the from-scratch toy model; the dense
# CRF gave the best pseudo labels on the toy data (README).
pseudo_label_cfg = dict(
    prms=False, scorer=None, refiner=dict(type='DenseCRFRefiner'))
