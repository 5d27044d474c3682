# Tiny CLIP pretraining on the toy captions (docs/toy_world.md): 400
# iterations of batch 64 (6.4 epochs of the default 4000 pairs), about
# 10 minutes on one (shared) CPU thread. Export the best checkpoint with
# tools/model_converters/export_clip.py for the toy configs' pretrained=.
_base_ = [
    '../_base_/models/clip-pretrain_clip-tiny.py',
    '../_base_/datasets/toy_captions.py',
    '../_base_/schedules/clip_pretrain_400it.py'
]
model = dict(zero_shot_classes=_base_.toy_classes)
