# TRIS step 1 from the toy world's pretrained tiny CLIP (docs/toy_world.md):
# both towers start from the export of configs/pretrain/clip-tiny_*, the
# encoders train at 0.1x the head's learning rate (the paper's recipe), and
# the calibration loss scores the masked image with the same CLIP, frozen.
# toy_clip_weights is written by tools/run_toy_job.sh (or set it with
# --cfg-options toy_clip_weights=...).
_base_ = ['./tris_clip-tiny.py']
toy_clip_weights = 'data/toy_world/clip-tiny_toycaptions.pth'
model = dict(
    image_encoder=dict(pretrained=toy_clip_weights),
    text_encoder=dict(pretrained=toy_clip_weights),
    decode_head=dict(
        loss_cal=dict(
            _delete_=True, type='CalibrationLoss',
            scorer=dict(arch=_base_.tiny_clip, pretrained=toy_clip_weights),
            loss_weight=2.0, pos_weight=1.0)))
# PRMS with the same frozen CLIP; the dense CRF refiner of the toy configs.
pseudo_label_cfg = dict(
    prms=True, scorer=dict(_delete_=True, arch=_base_.tiny_clip,
                           pretrained=toy_clip_weights))
