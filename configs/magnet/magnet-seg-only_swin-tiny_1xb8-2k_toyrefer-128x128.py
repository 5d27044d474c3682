_base_ = ['./magnet_swin-tiny_1xb8-2k_toyrefer-128x128.py']
# Ablation: segmentation losses only (no Mask Grounding, no alignment loss).
model = dict(decode_head=dict(mask_grounding=None, alignment=None))
