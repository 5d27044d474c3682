# MagNet for training (./magnet_swin-b.py + our losses, docs/methods/magnet.md):
# Mask Grounding and the cross-modal alignment loss on top of the
# deep-supervised segmentation losses, trained at 480x480 (the released
# input: PIL-bilinear resize, aspect ratio not kept), evaluated with the
# released protocol (./magnet_released_eval.py). Weights from local files:
# model.text_encoder.{pretrained, vocab_file} (bert-base-uncased) and the
# ImageNet-22k Swin-B (window 12, 384) converted with mmseg's swin2mmseg:
# model.image_encoder.init_cfg.checkpoint (required: training starts from it).
_base_ = ['./magnet_released_eval.py']
model = dict(
    image_encoder=dict(init_cfg=dict(type='Pretrained', checkpoint=None)),
    decode_head=dict(
        mask_grounding=dict(ratio=0.15, replace=(0.8, 0.1), embed_dims=256,
                            num_layers=1, num_heads=8, ffn_dims=1024,
                            loss_weight=1.0),
        alignment=dict(embed_dims=256, text_temperature=0.1,
                       pixel_temperature=0.1, text_weight=1.0,
                       pixel_weight=1.0, max_negatives=1024)))
magnet_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRISAnnotations')
] + _base_.magnet_resize + [dict(type='PackRISInputs')]
magnet_train_loader = dict(batch_size=8,
                           dataset=dict(pipeline=magnet_train_pipeline))
