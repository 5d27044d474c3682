_base_ = [
    '../_base_/models/tris-step2_clip-tiny.py',
    '../_base_/datasets/toy_refer.py', '../_base_/default_runtime.py'
]
# Step 2 on the toy data: trained on the pseudo masks of the toy step-1 run
# (tools/generate_pseudo_labels.py), evaluated on the GT masks.
train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        pseudo_label_dir='work_dirs/toy/pseudo_labels', num_negatives=0))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=100,
         by_epoch=False),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=100, end=2000,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000,
                 val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000,
                    max_keep_ckpts=1, save_best='val/mIoU', rule='greater'))
randomness = dict(seed=0)
