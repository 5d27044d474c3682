# The released MagNet evaluation (yxchng/mask-grounding test.py), for the
# RefCOCO-family eval configs: the image resized to 480x480 with PIL's
# bilinear filter (aspect ratio not kept), mask logits up-sampled to 480x480
# (align_corners=True) and kept there (MagNetMaskDecoder(output='input')),
# the GT resized to 480x480 with PIL's nearest rule, then oIoU / mIoU /
# Prec@X over every expression (RISMetric(protocol='magnet')).
_base_ = ['./magnet_swin-b.py']
magnet_size = (480, 480)
magnet_resize = [
    dict(type='Resize', scale=magnet_size, keep_ratio=False,
         backend='pillow', interpolation='bilinear')
]
# The test pipeline (the pieces of ../datasets/refer.py with the released
# resize) and loader of the eval configs; evaluation only.
magnet_test_pipeline = [dict(type='LoadImageFromFile')] + magnet_resize + [
    dict(type='LoadRISAnnotations'),
    dict(type='PackRISInputs')
]
magnet_loader = dict(batch_size=8, dataset=dict(pipeline=magnet_test_pipeline))
model = dict(test_cfg=dict(mask_decoder=dict(
    type='MagNetMaskDecoder', threshold=0.5, output='input')))
magnet_evaluator = dict(type='RISMetric', protocol='magnet',
                        eval_size=magnet_size)
