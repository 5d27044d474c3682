_base_ = [
    '../_base_/models/tris_clip-tiny.py', '../_base_/datasets/toy_refer.py',
    '../_base_/schedules/toy_3k.py'
]
train_dataloader = dict(batch_size=32)
default_hooks = dict(checkpoint=dict(save_best='val/PointM'))
