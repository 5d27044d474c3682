_base_ = ['./tris_15e.py']
# The released step-2 recipe (train_stage2.py): AdamW 5e-5, weight decay
# 1e-2, backbone lr x0.1 except the positional embeddings (the text one
# trains at the head lr; our image encoder has no attnpool), 15 epochs.
# Its poly LambdaLR is stepped once per *epoch* on a per-iteration horizon,
# so the lr stays within 0.1 % of 5e-5: a constant lr here.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'text_encoder.positional_embedding': dict(lr_mult=1.0)}))
param_scheduler = []
