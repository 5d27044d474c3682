_base_ = ['../_base_/models/tris-step2_clip-r50.py',
          '../_base_/datasets/refcoco+_unc.py', '../_base_/schedules/tris_step2_15e.py']
# Paper recipe (batch 48) on the pseudo masks of tools/generate_pseudo_labels.py
train_dataloader = dict(batch_size=48, dataset=dict(
    pipeline=_base_.train_loading, pseudo_label_dir='work_dirs/pseudo_labels/refcoco+-unc'))
# The released TRIS evaluation protocol (README, "Metrics").
val_evaluator = test_evaluator = dict(type='RISMetric', protocol='tris')
