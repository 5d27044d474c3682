_base_ = ['../_base_/models/pcnet_clip-r50.py',
          '../_base_/datasets/refcocog_google.py', '../_base_/schedules/tris_15e.py']
# The TRIS recipe (batch 48, K = 6) + PCNet's data, made offline (README,
# "PCNet"): phrases and 40 CLIP-scored proposals per image, under data_root.
pcnet_data = dict(phrase_file='refcocog/phrases(google).json',
                  proposal_dir='refcocog/proposals(google)')
train_dataloader = dict(batch_size=48, dataset=dict(
    pipeline=_base_.pcnet_train_pipeline, **pcnet_data))
val_dataloader = dict(
    dataset=dict(pipeline=_base_.pcnet_test_pipeline, **pcnet_data))
test_dataloader = val_dataloader
# Both evaluations, keys kept apart: every expression with our rules
# ({split}/...) and the released PCNet protocol (pcnet/{split}/...: the
# first expression of each ref), both on the released mask (R > 0) and the
# released "segmentor" proposal (model test_cfg).
val_evaluator = [
    dict(type='RISMetric'),
    dict(type='RISMetric', protocol='pcnet', prefix='pcnet')]
test_evaluator = val_evaluator
