_base_ = ['./adamw.py']
# TRIS recipe: AdamW 5e-5, weight decay 1e-2, backbone lr x0.1, poly decay,
# 15 epochs.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(
        image_encoder=dict(lr_mult=0.1), text_encoder=dict(lr_mult=0.1))))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=15,
         by_epoch=True, convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=15, val_interval=1)
# Epoch-based logging and checkpoints (the 3 latest and the best).
default_hooks = dict(
    logger=dict(log_metric_by_epoch=True),
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=3))
log_processor = dict(by_epoch=True)
