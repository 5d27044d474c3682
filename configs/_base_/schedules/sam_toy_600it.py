# SAM pretraining on CPU: AdamW 2e-3 (weight decay 0.1, as SAM), a
# 50-iteration warm-up then poly decay, 600 iterations, val at 300 and 600.
_base_ = ['../default_runtime.py']
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.1),
    clip_grad=dict(max_norm=1.0, norm_type=2))
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=50,
         by_epoch=False),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=50, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=300)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1,
                    save_best='val/point_mIoU', rule='greater'))
randomness = dict(seed=0)
