# The MagNet network of ./magnet_swin-b.py with every width shrunk, for CPU
# runs on the toy data (random weights): Swin embed 16, depths 2-2-2-2,
# window 4; a 4-layer BERT (width 32) in four blocks of one layer with the
# built-in character vocabulary; a 1-layer pixel decoder and a 3-layer
# one-query decoder of width 32.
_base_ = ['./magnet_swin-b.py']
data_preprocessor = dict(_base_.data_preprocessor, size=(128, 128))
model = dict(
    data_preprocessor=data_preprocessor,
    image_encoder=dict(
        pretrain_img_size=128, embed_dims=16, depths=(2, 2, 2, 2),
        num_heads=(1, 2, 2, 4), window_size=4, drop_path_rate=0.1),
    text_encoder=dict(
        config=dict(vocab_size=256, hidden_size=32, num_hidden_layers=4,
                    num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=64),
        vocab_file='chars', context_length=32, block_layers=(1, 2, 3, 4)),
    decode_head=dict(
        pixel_decoder=dict(conv_dim=32, mask_dim=32, num_layers=1,
                           ffn_dims=64, num_heads=4, num_points=2,
                           num_groups=8),
        predictor=dict(hidden_dim=32, num_heads=4, ffn_dims=64,
                       num_layers=3)))
