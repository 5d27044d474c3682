_base_ = ['./adamw.py']
# The toy CPU recipe: AdamW 5e-4 with gradient clipping, a 100-iteration
# linear warm-up then poly decay, 3000 iterations, val every 1000, seed 0.
optim_wrapper = dict(
    optimizer=dict(lr=5e-4), clip_grad=dict(max_norm=1.0, norm_type=2))
lr_warmup = dict(type='LinearLR', start_factor=0.1, begin=0, end=100,
                 by_epoch=False)
lr_decay = dict(type='PolyLR', power=0.9, eta_min=0.0, begin=100,
                end=3000, by_epoch=False)
param_scheduler = [lr_warmup, lr_decay]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=3000,
                 val_interval=1000)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=1))
randomness = dict(seed=0)
