_base_ = ['../_base_/models/tris-step2_clip-r50.py',
          '../_base_/datasets/refcoco-m_val.py',
          '../_base_/schedules/eval_only.py']
# Evaluates a RefCOCO (UNC) checkpoint on RefCOCO val and RefCOCO-M val.
train_dataloader = None
# The released TRIS evaluation protocol (README, "Metrics").
val_evaluator = test_evaluator = dict(type='RISMetric', protocol='tris')
