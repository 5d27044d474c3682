# PCNet on the toy data from the toy world's stand-ins (docs/toy_world.md):
# the pretrained tiny CLIP (towers, calibration and the proposal
# similarities) and proposals from the pretrained tiny SAM's automatic mask
# generator, so the RaS target is the proposal CLIP ranks first, as in the
# paper. Make the proposals with tools/generate_proposals.py (this config's
# proposal_cfg; tools/toy_benchmark.py --full does it) and the phrases with
# tools/decompose_phrases.py --backend rule.
_base_ = ['./pcnet_clip-tiny_1xb32-3k_toyrefer-128x128.py']
toy_clip_weights = 'data/toy_world/clip-tiny_toycaptions.pth'
toy_sam_weights = 'data/toy_world/sam-toy_toymasks.pth'
proposal_dir = 'proposals_toy_sam'  # relative to data_root
model = dict(
    image_encoder=dict(pretrained=toy_clip_weights),
    text_encoder=dict(pretrained=toy_clip_weights),
    decode_head=dict(
        loss_ras=dict(select='clip'),
        # PCNetHead calibrates every stage with the same frozen CLIP.
        loss_cal=dict(_delete_=True, type='CalibrationLoss',
                      scorer=dict(arch=_base_.tiny_clip,
                                  pretrained=toy_clip_weights),
                      loss_weight=2.0, pos_weight=1.0)))
# The toy SAM's logits are soft and its predicted IoUs low: SAM's default
# thresholds keep nothing (docs/toy_sam.md).
proposal_cfg = dict(
    _delete_=True, backend='sam', top_n=40,
    sam=dict(arch='vit_toy', checkpoint=toy_sam_weights, points_per_side=16,
             pred_iou_thresh=0.5, stability_score_thresh=0.0,
             score='predicted_iou'),
    clip=dict(arch=_base_.tiny_clip, weights=toy_clip_weights,
              batch_size=64))
# The 1000-iteration toy schedule (configs/_base_/schedules/toy_1k.py).
param_scheduler = [_base_.lr_warmup, dict(_base_.lr_decay, end=1000)]
train_cfg = dict(max_iters=1000, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500))
pcnet_loading = [
    dict(type='LoadPhrases', num_phrases=2),
    dict(type='LoadProposals', num_proposals=40, with_clip_sim=True),
]
pcnet_train_pipeline = _base_.sample_negatives + _base_.sample_partner + \
    _base_.load_image + _base_.load_annotations + pcnet_loading + \
    _base_.resize + _base_.pack
pcnet_test_pipeline = _base_.load_image + _base_.resize + \
    _base_.load_annotations + pcnet_loading + _base_.pack
pcnet_data = dict(phrase_file=_base_.phrase_file, proposal_dir=proposal_dir)
train_dataloader = dict(
    dataset=dict(pipeline=pcnet_train_pipeline, **pcnet_data))
val_dataloader = dict(dataset=dict(pipeline=pcnet_test_pipeline, **pcnet_data))
test_dataloader = val_dataloader
