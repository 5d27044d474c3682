_base_ = [
    '../_base_/models/tris_clip-tiny.py', '../_base_/datasets/toy_refer.py',
    '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32, dataset=dict(num_negatives=3))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=100,
         by_epoch=False),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=100, end=3000,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=3000,
                 val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000,
                    max_keep_ckpts=1, save_best='val/PointM', rule='greater'))
randomness = dict(seed=0)
