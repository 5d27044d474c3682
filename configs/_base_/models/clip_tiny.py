# A tiny randomly initialised CLIP (open_clip CLIP kwargs) for CPU runs on
# the toy data; the tiny TRIS, step-2 and PCNet configs share it.
tiny_clip = dict(
    embed_dim=64,
    vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=128),
    text_cfg=dict(
        context_length=20, vocab_size=49408, width=64, heads=2, layers=2))
