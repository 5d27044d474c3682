# Ablation: no negative points (N = 0; the negative-point loss is idle).
_base_ = ['./ppt_clip-tiny-sam-toy_1xb16-1k_toyrefer-128x128.py']
model = dict(decode_head=dict(num_negative=0, loss_neg=None))
