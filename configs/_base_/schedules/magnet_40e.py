_base_ = ['./tris_15e.py']
# LAVT's recipe, which MagNet states it follows (the release has no training
# script): AdamW 5e-5, weight decay 1e-2, poly decay (the epoch-based
# schedule of ./tris_15e.py), 40 epochs; the backbone and BERT lr
# multipliers are options (1.0: LAVT trains everything at 5e-5).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(
    image_encoder=dict(lr_mult=1.0), text_encoder=dict(lr_mult=1.0))))
param_scheduler = [dict(_base_.param_scheduler[0], end=40)]
train_cfg = dict(max_epochs=40)
