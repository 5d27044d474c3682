_base_ = ['./magnet_swin-b_4xb8-40e_refcoco-unc-480x480.py']
# Ablation: without the cross-modal alignment loss.
model = dict(decode_head=dict(alignment=None))
