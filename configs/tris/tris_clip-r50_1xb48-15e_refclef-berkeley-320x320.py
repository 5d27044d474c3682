_base_ = ['../_base_/models/tris_clip-r50.py',
          '../_base_/datasets/refclef_berkeley.py', '../_base_/schedules/tris_15e.py']
# Paper recipe: batch 48; K = 6 calibration negatives (released code: 3).
train_dataloader = dict(batch_size=48, dataset=dict(num_negatives=6))
