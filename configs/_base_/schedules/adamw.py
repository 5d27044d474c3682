# What the schedules share: AdamW (weight decay 1e-2), a val and a test
# loop, and the best checkpoint by val mIoU kept.
_base_ = ['../default_runtime.py']
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, weight_decay=1e-2))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', save_best='val/mIoU',
                    rule='greater'))
