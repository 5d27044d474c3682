_base_ = ['../_base_/models/magnet_swin-tiny.py',
          '../_base_/datasets/toy_refer.py',
          '../_base_/schedules/toy_3k.py']
# The tiny MagNet network trained fully supervised (GT masks) on the toy
# data from random weights: the upper-bound row of the toy table. Our losses
# (the release has none, docs/methods/magnet.md): mask BCE + dice + class
# term over every decoder prediction, Mask Grounding (15 % of the word
# tokens masked, a second pass) and the cross-modal alignment loss; 2000
# iterations of the toy recipe.
model = dict(decode_head=dict(
    mask_grounding=dict(ratio=0.15, embed_dims=32, num_layers=1, num_heads=4,
                        ffn_dims=64, loss_weight=1.0),
    alignment=dict(embed_dims=32, text_temperature=0.1,
                   pixel_temperature=0.1, text_weight=1.0,
                   pixel_weight=1.0)))
train_dataloader = dict(batch_size=8,
                        dataset=dict(pipeline=_base_.train_loading))
param_scheduler = [_base_.lr_warmup, dict(_base_.lr_decay, end=2000)]
train_cfg = dict(max_iters=2000, val_interval=1000)
