_base_ = ['./clip_preprocessor.py']
model = dict(
    type='CenterPriorSegmentor',
    data_preprocessor=_base_.data_preprocessor,
    sigma=0.25,
    test_cfg=dict(mask_decoder=dict(
        type='ThresholdMaskDecoder', norm=None, threshold=0.5)))
