_base_ = ['../_base_/models/pcnet_clip-r50.py',
          '../_base_/datasets/refcoco-m_val.py',
          '../_base_/schedules/eval_only.py']
# Evaluates a RefCOCO (UNC) checkpoint on RefCOCO val and RefCOCO-M val;
# RefCOCO-M's phrases and proposals are made like RefCOCO's (README, "Data
# preparation").
train_dataloader = None
pipeline = _base_.pcnet_test_pipeline
test_dataloader = dict(dataset=dict(datasets=[
    dict(_base_.refcoco_val, pipeline=pipeline,
         phrase_file='refcoco/phrases(unc).json',
         proposal_dir='refcoco/proposals(unc)'),
    dict(_base_.refcocom_val, pipeline=pipeline,
         phrase_file='refcoco-m/phrases(unc).json',
         proposal_dir='refcoco-m/proposals(unc)')]))
# Both evaluations, keys kept apart: every expression with our rules
# ({split}/...) and the released PCNet protocol (pcnet/{split}/...: the
# first expression of each ref), both on the released mask (R > 0) and the
# released "segmentor" proposal (model test_cfg).
val_evaluator = [
    dict(type='RISMetric'),
    dict(type='RISMetric', protocol='pcnet', prefix='pcnet')]
test_evaluator = val_evaluator
