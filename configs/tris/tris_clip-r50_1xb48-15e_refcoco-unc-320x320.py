_base_ = [
    '../_base_/models/tris_clip-r50.py', '../_base_/datasets/refcoco_unc.py',
    '../_base_/default_runtime.py', '../_base_/schedules/tris_15e.py'
]
# Paper recipe: batch 48 (47 in-batch negatives per image), K = 6
# same-image calibration negatives (the released code uses 3).
train_dataloader = dict(batch_size=48, dataset=dict(num_negatives=6))
# Epoch-based logging and checkpoints; keep the best val mIoU.
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1,
                    max_keep_ckpts=3, save_best='val/mIoU', rule='greater'))
log_processor = dict(by_epoch=True)
