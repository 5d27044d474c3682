# Evaluation only (the centre prior has nothing to train).
_base_ = ['../default_runtime.py']
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
