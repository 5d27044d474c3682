# TRIS step 2 on the tiny randomly initialised CLIP of tris_clip-tiny.py
# (CPU runs on the toy data): our network (./tris-step2-pwam_clip-r50.py),
# every width shrunk.
_base_ = ['./tris-step2-pwam_clip-r50.py', './clip_tiny.py']
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    image_encoder=dict(arch=dict(_base_.tiny_clip, _delete_=True)),
    text_encoder=dict(arch=dict(_base_.tiny_clip, _delete_=True)),
    decode_head=dict(in_channels=(64, 128, 256, 512), channels=32))
