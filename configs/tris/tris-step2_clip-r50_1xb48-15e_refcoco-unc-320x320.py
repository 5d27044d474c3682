_base_ = [
    '../_base_/models/tris-step2_clip-r50.py',
    '../_base_/datasets/refcoco_unc.py', '../_base_/schedules/tris_15e.py'
]
# Paper recipe: batch 48, 15 epochs, on the step-1 pseudo masks written by
# tools/generate_pseudo_labels.py (override pseudo_label_dir). Validation
# and test keep the GT masks. No calibration negatives in step 2.
train_dataloader = dict(
    batch_size=48,
    dataset=dict(
        pseudo_label_dir='work_dirs/pseudo_labels/refcoco-unc',
        num_negatives=0))
