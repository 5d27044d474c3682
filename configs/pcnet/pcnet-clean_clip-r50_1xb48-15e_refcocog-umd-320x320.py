# PCNet, our clean re-design (PCNetHead; README "PCNet: parity with the
# released code"): the same data and schedule as the released-network
# config pcnet_clip-r50_1xb48-15e_refcocog-umd-320x320.py.
_base_ = ['../_base_/models/pcnet-clean_clip-r50.py',
          '../_base_/datasets/refcocog_umd.py', '../_base_/schedules/tris_15e.py']
# The TRIS recipe (batch 48, K = 6) + PCNet's data, made offline (README,
# "PCNet"): phrases and 40 CLIP-scored proposals per image, under data_root.
pcnet_data = dict(phrase_file='refcocog/phrases(umd).json',
                  proposal_dir='refcocog/proposals(umd)')
train_dataloader = dict(batch_size=48, dataset=dict(
    pipeline=_base_.pcnet_train_pipeline, **pcnet_data))
val_dataloader = dict(
    dataset=dict(pipeline=_base_.pcnet_test_pipeline, **pcnet_data))
test_dataloader = val_dataloader
