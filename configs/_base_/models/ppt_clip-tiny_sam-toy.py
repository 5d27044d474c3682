# PPT on the toy world (CPU): the tiny CLIP (clip_tiny.py, pretrained by
# configs/pretrain/clip-tiny_* + tools/model_converters/export_clip.py)
# and the toy SAM (vit_toy, configs/pretrain/sam-tiny_* +
# tools/model_converters/export_sam.py), read from data/toy_world/ where
# tools/toy_benchmark.py (the main job) writes them. Other exports:
#   --cfg-options model.image_encoder.pretrained=$CLIP \
#     model.text_encoder.pretrained=$CLIP \
#     model.decode_head.loss_mask_cal.scorer.pretrained=$CLIP \
#     model.decode_head.loss_select.scorer.pretrained=$CLIP \
#     model.sam.checkpoint=$SAM
# c3 features (stride 16, 8x8 at 128x128) as in the tiny TRIS config.
# One positive point: the toy SAM was pretrained with one point (or a box)
# per mask; three interior points lowered its mask mIoU from 59.2 to 40.0
# on the toy refer val split (docs/methods/ppt.md).
_base_ = ['./ppt_clip-r50_sam-vit-h.py', './clip_tiny.py']
clip_weights = 'data/toy_world/clip-tiny_toycaptions.pth'
sam_checkpoint = 'data/toy_world/sam-toy_toymasks.pth'
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    image_encoder=dict(
        arch=dict(_base_.tiny_clip, _delete_=True), out_indices=(0, 1, 2),
        pretrained=clip_weights),
    text_encoder=dict(arch=dict(_base_.tiny_clip, _delete_=True),
                      pretrained=clip_weights),
    feature_index=2,
    decode_head=dict(
        in_channels=256, text_channels=64, channels=64, num_heads=4,
        num_positive=1,
        loss_mask_cal=dict(scorer=dict(
            arch=dict(_base_.tiny_clip, _delete_=True),
            pretrained=clip_weights)),
        loss_select=dict(scorer=dict(
            arch=dict(_base_.tiny_clip, _delete_=True),
            pretrained=clip_weights))),
    sam=dict(arch='vit_toy', checkpoint=sam_checkpoint))
