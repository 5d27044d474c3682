# PPT (CVPR'24, "Curriculum Point Prompting"; no released code, see
# docs/methods/ppt.md): CLIP RN50 (frozen) -> response + point generator
# (PPTHead: P positive and N negative soft-argmax points) -> frozen SAM
# ViT-H -> mask. Only the head trains. Weights are local files, None here:
#   --cfg-options model.image_encoder.pretrained=checkpoints/RN50.pt \
#     model.text_encoder.pretrained=checkpoints/RN50.pt \
#     model.sam.checkpoint=checkpoints/sam_vit_h_4b8939.pth \
#     model.decode_head.loss_mask_cal.scorer.pretrained=$VIT_B_32 \
#     model.decode_head.loss_select.scorer.pretrained=$VIT_B_32
# (the variables below name them; a child config that changes a variable
# must also set the model key, as the config system resolves them here).
_base_ = ['./clip_inputs.py']
sam_arch = 'vit_h'
sam_checkpoint = None
scorer_arch = 'ViT-B-32-quickgelu'
scorer_weights = None
num_positive = 3
num_negative = 2
model = dict(
    type='PPTSegmentor',
    **_base_.clip_towers,
    feature_index=-1,  # c4 [B, 2048, 10, 10] at 320x320
    frozen_encoders=('image_encoder', 'text_encoder'),
    decode_head=dict(
        type='PPTHead', in_channels=2048, text_channels=1024, channels=256,
        num_positive=num_positive, num_negative=num_negative,
        num_layers=2, num_heads=8, response_prior=8.0,
        # (a) localisation: TRIS's classification loss on the response.
        loss_cls=dict(type='ClassificationLoss', loss_weight=5.0),
        loss_cal=None,
        # (b) SAM's mask x image scored by a frozen CLIP against the
        # expression and its same-image negatives (neg_texts).
        loss_mask_cal=dict(
            type='PPTMaskCalibrationLoss',
            scorer=dict(arch=scorer_arch, pretrained=scorer_weights),
            pos_weight=1.0, loss_weight=2.0),
        # (c) negative points: other expressions' responses, mask leaks.
        loss_neg=dict(type='PPTNegativePointLoss', loss_weight=1.0),
        # (d) positive points on the referent, apart from each other.
        loss_spread=dict(type='PPTSpreadLoss', loss_weight=1.0,
                         repulsion_weight=1.0, sigma=0.08),
        # which object the positive points prompt: the best of the
        # response's top cells, each prompting SAM alone, by the frozen CLIP
        loss_select=dict(
            type='PPTPointSelectionLoss',
            scorer=dict(arch=scorer_arch, pretrained=scorer_weights),
            num_candidates=4, loss_weight=1.0)),
    # Embeddings come from a sample's precomputed sam_embedding when the
    # pipeline loads one (LoadSAMEmbedding), else from SAM's encoder.
    sam=dict(type='FrozenSAM', arch=sam_arch, checkpoint=sam_checkpoint),
    test_cfg=dict(mask_decoder=dict(type='PointPromptSAMDecoder')))
