_base_ = ['./adamw.py']
# CLIP pretraining on the toy captions: AdamW as CLIP (betas 0.9/0.98,
# eps 1e-6, weight decay 0.1 except gains, biases and the temperature),
# 5e-4, a 50-iteration linear warm-up, then cosine decay to 0 at iteration
# 400; validation every 100 iterations keeps the checkpoint with the best
# zero-shot accuracy.
pretrain_iters = 400
optim_wrapper = dict(
    optimizer=dict(lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0,
        custom_keys={'logit_scale': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=1.0, norm_type=2))
warmup_iters = 50
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, begin=0, end=warmup_iters,
         by_epoch=False),
    dict(type='CosineAnnealingLR', eta_min=0.0, begin=warmup_iters,
         end=pretrain_iters, T_max=pretrain_iters - warmup_iters,
         by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=pretrain_iters,
                 val_interval=100)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=1,
                    save_best='clip/acc', rule='greater'))
randomness = dict(seed=0)
