_base_ = ['../_base_/models/magnet_swin-tiny.py',
          '../_base_/datasets/toy_refer.py',
          '../_base_/schedules/toy_3k.py']
# The tiny MagNet network trained fully supervised (GT masks) on the toy
# data from random weights: the upper-bound row of the toy table. Our losses
# (the release has none): mask BCE + dice + class term over every decoder
# prediction (MagNetHead); 2000 iterations of the toy recipe.
train_dataloader = dict(batch_size=8,
                        dataset=dict(pipeline=_base_.train_loading))
param_scheduler = [_base_.lr_warmup, dict(_base_.lr_decay, end=2000)]
train_cfg = dict(max_iters=2000, val_interval=1000)
