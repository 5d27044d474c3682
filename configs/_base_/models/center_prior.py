data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709, 116.7460, 104.0937],
    std=[68.5005, 66.6322, 70.3232],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='CenterPriorSegmentor',
    data_preprocessor=data_preprocessor,
    sigma=0.25,
    test_cfg=dict(mask_threshold=0.5, response_norm=None))
