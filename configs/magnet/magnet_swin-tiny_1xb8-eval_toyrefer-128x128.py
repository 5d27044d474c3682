# The tiny MagNet network (random weights) evaluated on the toy data through
# tools/test.py with the released protocol at the toy input size: a smoke
# test of the inference path (MagNet training is not implemented yet).
_base_ = ['../_base_/models/magnet_swin-tiny.py',
          '../_base_/datasets/toy_refer.py',
          '../_base_/schedules/eval_only.py']
train_dataloader = None
val_dataloader = dict(batch_size=8)
test_dataloader = val_dataloader
val_evaluator = dict(type='RISMetric', protocol='magnet',
                     eval_size=_base_.crop_size)
test_evaluator = val_evaluator
