# PCNet (NeurIPS'24) on TRIS step 1: a 3-stage Conditional Referring Module
# (cue k = phrase k, the last stage the full sentence) plus the
# Region-aware Shrinking and Instance-aware Disambiguation losses over mask
# proposals. Same CLIP RN50 encoders and losses as tris_clip-r50.py.
_base_ = ['./tris_clip-r50.py']
model = dict(
    type='PCNetSegmentor',
    decode_head=dict(
        type='PCNetHead', token_channels=512, num_stages=3, gamma=0.1,
        # RaS target: the proposal whose CLIP embedding is closest to the
        # expression (generate_proposals.py stores the similarities).
        loss_ras=dict(type='RegionShrinkingLoss', loss_weight=1.0,
                      select='clip'),
        loss_iad=dict(type='InstanceDisambiguationLoss', loss_weight=1.0)),
    # 'both': the thresholded response (pred_sem_seg) and the proposal at
    # its peak (the paper's "segmentor" row), reported separately.
    test_cfg=dict(mask_decoder=dict(
        _delete_=True, type='PeakProposalMaskDecoder', output='both')))
# Its data: pcnet_loading in ../datasets/refer.py (phrases, proposals).
# tools/generate_proposals.py: SAM ViT-H's automatic masks, the top 40 per
# image, scored against every expression by a frozen CLIP ViT-B/32. Local
# weights only: set sam.checkpoint and clip.weights (or the flags).
proposal_cfg = dict(
    backend='sam',
    top_n=40,
    sam=dict(arch='vit_h', checkpoint=None),
    clip=dict(arch='ViT-B-32-quickgelu', weights=None))
