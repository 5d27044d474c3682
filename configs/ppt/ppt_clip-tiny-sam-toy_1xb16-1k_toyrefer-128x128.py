_base_ = [
    '../_base_/models/ppt_clip-tiny_sam-toy.py',
    '../_base_/datasets/toy_refer.py', '../_base_/schedules/toy_3k.py'
]
# ---- Curriculum: PPT's multi-source curriculum (the toy captions, then
# the toy classes, then toy refer) replaces this train_dataloader. ----
train_dataloader = dict(batch_size=16)
lr_decay = dict(_base_.lr_decay, end=1000)
param_scheduler = [_base_.lr_warmup, lr_decay]
train_cfg = dict(max_iters=1000, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500, save_best='val/mIoU'))
