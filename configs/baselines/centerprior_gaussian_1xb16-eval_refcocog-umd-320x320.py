_base_ = [
    '../_base_/models/center_prior.py', '../_base_/datasets/refcocog_umd.py',
    '../_base_/default_runtime.py'
]
# Evaluation only: the centre prior has nothing to train.
train_dataloader = None
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
