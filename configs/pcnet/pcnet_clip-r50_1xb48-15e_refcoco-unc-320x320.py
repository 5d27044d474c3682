_base_ = [
    '../_base_/models/pcnet_clip-r50.py', '../_base_/datasets/refcoco_unc.py',
    '../_base_/schedules/tris_15e.py'
]
# PCNet on refcoco (unc) with the TRIS recipe (batch 48, K = 6 negatives).
# Inputs made offline (README, "PCNet"): the phrases of every expression
# (tools/decompose_phrases.py) and 40 SAM proposals per image with their CLIP
# similarity to each expression (tools/generate_proposals.py).
phrase_file = 'refcoco/phrases(unc).json'  # relative to data_root
proposal_dir = 'data/refcoco/proposals(unc)'
pcnet_loading = [
    dict(type='LoadPhrases', num_phrases=2),  # stages 1-2; 3: the sentence
    dict(type='LoadProposals', proposal_dir=proposal_dir, num_proposals=40),
]
# Before Resize in training (proposals are resized with the image), after it
# in testing (proposals stay at the original size, like the GT mask).
train_pipeline = (_base_.train_pipeline[:2] + pcnet_loading +
                  _base_.train_pipeline[2:])
test_pipeline = (_base_.test_pipeline[:3] + pcnet_loading +
                 _base_.test_pipeline[3:])
train_dataloader = dict(
    batch_size=48,
    dataset=dict(
        num_negatives=6, phrase_file=phrase_file, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(phrase_file=phrase_file, pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(phrase_file=phrase_file, pipeline=test_pipeline))
