_base_ = ['../_base_/models/magnet_released_eval.py',
          '../_base_/datasets/refcoco_unc.py',
          '../_base_/schedules/eval_only.py']
# A released RefCOCO (UNC) MagNet checkpoint, converted with
# tools/model_converters/magnet2mmwris.py, with the released protocol.
train_dataloader = None
val_dataloader = test_dataloader = _base_.magnet_loader
val_evaluator = test_evaluator = _base_.magnet_evaluator
