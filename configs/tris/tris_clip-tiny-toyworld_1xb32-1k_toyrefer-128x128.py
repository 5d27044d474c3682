# TRIS step 1 on the toy data from the toy world's pretrained tiny CLIP
# (docs/toy_world.md), with the calibration loss through the same CLIP,
# frozen. tools/toy_benchmark.py trains it; the from-scratch config
# tris_clip-tiny_1xb32-3k_toyrefer-128x128.py is the "no pretraining" row.
_base_ = [
    '../_base_/models/tris_clip-tiny-toyworld.py',
    '../_base_/datasets/toy_refer.py', '../_base_/schedules/toy_1k.py'
]
train_dataloader = dict(batch_size=32)
default_hooks = dict(checkpoint=dict(save_best='val/PointM'))
