# TRIS step 2 on the tiny randomly initialised CLIP of tris_clip-tiny.py
# (CPU runs on the toy data): same network, every width shrunk.
_base_ = ['./tris-step2_clip-r50.py']
tiny_clip = dict(
    embed_dim=64,
    vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=128),
    text_cfg=dict(
        context_length=20, vocab_size=49408, width=64, heads=2, layers=2))
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    image_encoder=dict(arch=dict(tiny_clip, _delete_=True)),
    text_encoder=dict(arch=dict(tiny_clip, _delete_=True)),
    decode_head=dict(in_channels=(64, 128, 256, 512), channels=32))
