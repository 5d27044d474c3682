_base_ = ['../_base_/models/tris_clip-r50.py',
          '../_base_/datasets/refcoco+_unc.py', '../_base_/schedules/tris_15e.py']
# Paper recipe: batch 48; K = 3 calibration negatives drawn as released
# (sample_negatives in ../_base_/datasets/refer.py).
train_dataloader = dict(batch_size=48)
# The released TRIS evaluation protocol (README, "Metrics").
val_evaluator = test_evaluator = dict(type='RISMetric', protocol='tris')
