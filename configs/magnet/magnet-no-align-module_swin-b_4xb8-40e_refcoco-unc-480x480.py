_base_ = ['./magnet_swin-b_4xb8-40e_refcoco-unc-480x480.py']
# Ablation: without the cross-modal alignment module (no pooled branches:
# the decoder features are the mixer of the stage PWAM output alone).
model = dict(image_fusion=dict(pool_sizes=()))
