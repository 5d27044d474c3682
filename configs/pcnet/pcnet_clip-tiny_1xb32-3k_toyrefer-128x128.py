# PCNet on the toy data with the same tiny CLIP, data, optimiser and 3k
# iteration budget as the TRIS toy config, for a like-for-like comparison.
# Phrases from the rule-based decomposer and model-free colour-region
# proposals (a randomly initialised tiny SAM only gives noise); both are
# made by tools/pipelines/pcnet.sh.
_base_ = ['../tris/tris_clip-tiny_1xb32-3k_toyrefer-128x128.py']
phrase_file = 'phrases.json'  # relative to data_root
proposal_dir = 'data/toy_refer/proposals'
model = dict(
    type='PCNetSegmentor',
    decode_head=dict(
        type='PCNetHead', token_channels=64, num_stages=3, gamma=0.1),
    loss_ras=dict(type='RegionShrinkingLoss', loss_weight=1.0),
    loss_iad=dict(type='InstanceDisambiguationLoss', loss_weight=1.0),
    test_cfg=dict(predict_mode='both'))
pcnet_loading = [
    dict(type='LoadPhrases', num_phrases=2),
    dict(type='LoadProposals', proposal_dir=proposal_dir, num_proposals=40,
         with_clip_sim=False),
]
train_pipeline = (_base_.train_pipeline[:2] + pcnet_loading +
                  _base_.train_pipeline[2:])
test_pipeline = (_base_.test_pipeline[:3] + pcnet_loading +
                 _base_.test_pipeline[3:])
train_dataloader = dict(
    dataset=dict(phrase_file=phrase_file, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(phrase_file=phrase_file, pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(phrase_file=phrase_file, pipeline=test_pipeline))
