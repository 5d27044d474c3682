# The naive SAM integration: TRIS step-1 responses (TRISHead, trained with
# the classification loss alone), their peak as one positive point, SAM's
# mask. No point generator and no SAM during training.
_base_ = ['./ppt_clip-tiny-sam-toy_1xb16-1k_toyrefer-128x128.py']
model = dict(
    decode_head=dict(
        _delete_=True,
        type='TRISHead', in_channels=256, text_channels=64, channels=64,
        alpha=0.1, beta=0.1,
        loss_cls=dict(type='ClassificationLoss', loss_weight=5.0),
        loss_cal=None),
    test_cfg=dict(mask_decoder=dict(
        _delete_=True, type='ResponsePeakSAMDecoder')))
