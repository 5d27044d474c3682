# MagNet (Mask Grounding, CVPR'24), the released network (yxchng/mask-grounding
# test.py): Swin-B (window 12) and bert-base-uncased split into four blocks of
# three layers, fused both ways after every stage (MagNetImageFusion with the
# pool-1/2/3/6 alignment branch, MagNetTextFusion with the released mask
# arithmetic); a deformable-attention pixel decoder over the four fused
# features (4 layers, 256 channels, FFN 1024) and a one-query Mask2Former
# decoder (9 layers, 8 heads, FFN 2048); mask = sigmoid(logits) > 0.5.
# Weights: set bert_weights / bert_vocab (local files) and the Swin init_cfg,
# or load a converted released checkpoint
# (tools/model_converters/magnet2mmwris.py).
_base_ = ['./clip_preprocessor.py']
bert_weights = None
bert_vocab = None
bert_config = dict()  # BertConfig fields over bert-base-uncased
# ImageNet statistics (the released transforms.Normalize), 480x480 input.
data_preprocessor = dict(
    _base_.data_preprocessor,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    size=(480, 480))
model = dict(
    type='MagNetSegmentor',
    data_preprocessor=data_preprocessor,
    image_encoder=dict(
        type='MagNetSwinTransformer',
        pretrain_img_size=384,
        embed_dims=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True),
    text_encoder=dict(
        type='BertTextEncoder',
        config=bert_config,
        vocab_file=bert_vocab,
        pretrained=bert_weights,
        context_length=20,
        block_layers=(3, 6, 9, 12)),
    image_fusion=dict(pool_sizes=(1, 2, 3, 6), reduction=4, num_heads=1,
                      dropout=0.),
    text_fusion=dict(num_heads=1, dropout=0., mask_mode='released'),
    decode_head=dict(
        type='MagNetHead',
        pixel_decoder=dict(conv_dim=256, mask_dim=256, num_layers=4,
                           ffn_dims=1024, num_heads=8, num_points=4,
                           num_groups=32, num_outs=3),
        predictor=dict(hidden_dim=256, num_queries=1, num_classes=1,
                       num_heads=8, ffn_dims=2048, num_layers=9)),
    test_cfg=dict(mask_decoder=dict(type='MagNetMaskDecoder',
                                    threshold=0.5)))
