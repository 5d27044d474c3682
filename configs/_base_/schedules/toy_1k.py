_base_ = ['./toy_3k.py']
# The toy CPU recipe over 1000 iterations (val and checkpoint at 500, 1000).
lr_decay = dict(_base_.lr_decay, end=1000)
param_scheduler = [_base_.lr_warmup, lr_decay]
train_cfg = dict(max_iters=1000, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500))
