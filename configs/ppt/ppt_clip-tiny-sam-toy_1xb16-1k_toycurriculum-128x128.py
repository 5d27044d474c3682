# PPT on the toy world with its multi-source curriculum (the paper's
# recipe): object-centric toy captions -> class-level toy images -> toy
# referring expressions (configs/_base_/datasets/ppt_curriculum_toy.py;
# switch points at 150 and 400 of 1000 iterations), from the pretrained
# tiny CLIP and toy SAM of the toy world (data/toy_world/, written by
# tools/toy_benchmark.py). Validation and test on the toy referring data.
# The "no curriculum" ablation trains on the referring data alone:
# ppt_clip-tiny-sam-toy_1xb16-1k_toyrefer-128x128.py.
_base_ = [
    '../_base_/models/ppt_clip-tiny_sam-toy.py',
    '../_base_/datasets/ppt_curriculum_toy.py',
    '../_base_/schedules/toy_1k.py'
]
default_hooks = dict(checkpoint=dict(save_best='val/mIoU'))
