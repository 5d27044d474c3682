_base_ = [
    '../_base_/models/tris-step2_clip-tiny.py',
    '../_base_/datasets/toy_refer.py', '../_base_/schedules/toy_3k.py'
]
# Step 2 on the toy data: trained on the pseudo masks of the toy step-1 run
# (tools/generate_pseudo_labels.py), evaluated on the GT masks; 2000
# iterations.
train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        pseudo_label_dir='work_dirs/toy/pseudo_labels',
        pipeline=_base_.train_loading))
param_scheduler = [_base_.lr_warmup, dict(_base_.lr_decay, end=2000)]
train_cfg = dict(max_iters=2000)
