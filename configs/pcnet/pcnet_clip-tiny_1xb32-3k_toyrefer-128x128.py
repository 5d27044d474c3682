# PCNet on the toy data with the same tiny CLIP, data, optimiser and 3k
# iteration budget as the TRIS toy config, for a like-for-like comparison.
# Phrases from the rule-based decomposer and model-free colour-region
# proposals (a randomly initialised tiny SAM only gives noise); both are
# made by tools/pipelines/pcnet.sh.
_base_ = ['../tris/tris_clip-tiny_1xb32-3k_toyrefer-128x128.py']
phrase_file = 'phrases.json'  # relative to data_root
proposal_dir = 'proposals'  # relative to data_root
model = dict(
    type='PCNetSegmentor',
    decode_head=dict(
        type='PCNetHead', token_channels=64, num_stages=3, gamma=0.1,
        # No trained CLIP for proposal similarities here: the RaS target is
        # the proposal best aligned with the last stage's response.
        loss_ras=dict(type='RegionShrinkingLoss', loss_weight=1.0,
                      select='response'),
        loss_iad=dict(type='InstanceDisambiguationLoss', loss_weight=1.0)),
    test_cfg=dict(mask_decoder=dict(
        _delete_=True, type='PeakProposalMaskDecoder', output='both')))
# tools/generate_proposals.py: colour regions, no CLIP similarities.
proposal_cfg = dict(backend='regions', top_n=40, clip=None)
pcnet_loading = [
    dict(type='LoadPhrases', num_phrases=2),
    dict(type='LoadProposals', num_proposals=40, with_clip_sim=False),
]
pcnet_train_pipeline = _base_.sample_negatives + _base_.sample_partner + \
    _base_.load_image + _base_.load_annotations + pcnet_loading + \
    _base_.resize + _base_.pack
pcnet_test_pipeline = _base_.load_image + _base_.resize + \
    _base_.load_annotations + pcnet_loading + _base_.pack
pcnet_data = dict(phrase_file=phrase_file, proposal_dir=proposal_dir)
train_dataloader = dict(
    dataset=dict(pipeline=pcnet_train_pipeline, **pcnet_data))
val_dataloader = dict(dataset=dict(pipeline=pcnet_test_pipeline, **pcnet_data))
test_dataloader = val_dataloader
