_base_ = ['./adamw.py']
# PPT: only the point generator trains (frozen CLIP and SAM), so a higher
# lr than TRIS's 5e-5 (1e-4, our choice; the paper's is unknown); poly
# decay over 40k iterations of batch 16 (about 15 epochs of the ~42k
# referring train refs). Iteration-based, as the curriculum sampler needs.
max_iters = 40000
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=4000)
default_hooks = dict(
    logger=dict(log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
