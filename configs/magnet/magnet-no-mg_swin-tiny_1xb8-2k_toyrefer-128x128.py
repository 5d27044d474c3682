_base_ = ['./magnet_swin-tiny_1xb8-2k_toyrefer-128x128.py']
# Ablation: without Mask Grounding (same budget).
model = dict(decode_head=dict(mask_grounding=None))
