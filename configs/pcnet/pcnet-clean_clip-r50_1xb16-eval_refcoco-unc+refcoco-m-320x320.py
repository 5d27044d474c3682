# PCNet, our clean re-design (PCNetHead; README "PCNet: parity with the
# released code"): the same data and schedule as the released-network
# config pcnet_clip-r50_1xb16-eval_refcoco-unc+refcoco-m-320x320.py.
_base_ = ['../_base_/models/pcnet-clean_clip-r50.py',
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
