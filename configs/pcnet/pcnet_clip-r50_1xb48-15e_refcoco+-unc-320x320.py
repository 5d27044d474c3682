_base_ = [
    '../_base_/models/pcnet_clip-r50.py', '../_base_/datasets/refcoco+_unc.py',
    '../_base_/schedules/tris_15e.py'
]
# PCNet on refcoco+ (unc) with the TRIS recipe (batch 48, K = 6 negatives).
# Made offline (README, "PCNet"), relative to data_root: the phrases of every
# expression (tools/decompose_phrases.py) and 40 SAM proposals per image with
# their CLIP similarity to each expression (tools/generate_proposals.py).
pcnet_data = dict(
    phrase_file='refcoco+/phrases(unc).json',
    proposal_dir='refcoco+/proposals(unc)')
# Loaded before Resize in training (proposals are resized with the image),
# after it in testing (they stay at the original size, like the GT mask).
train_pipeline = (_base_.train_pipeline[:2] + _base_.pcnet_loading +
                  _base_.train_pipeline[2:])
test_pipeline = (_base_.test_pipeline[:3] + _base_.pcnet_loading +
                 _base_.test_pipeline[3:])
train_dataloader = dict(
    batch_size=48,
    dataset=dict(num_negatives=6, pipeline=train_pipeline, **pcnet_data))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, **pcnet_data))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline, **pcnet_data))
