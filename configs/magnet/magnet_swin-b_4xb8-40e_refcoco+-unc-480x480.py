_base_ = ['../_base_/models/magnet_swin-b_train.py',
          '../_base_/datasets/refcoco+_unc.py',
          '../_base_/schedules/magnet_40e.py']
# MagNet trained on RefCOCO+ (UNC) with our losses (Mask Grounding, alignment
# loss), LAVT's schedule; 4 GPUs x 8 images.
train_dataloader = _base_.magnet_train_loader
val_dataloader = test_dataloader = _base_.magnet_loader
val_evaluator = test_evaluator = _base_.magnet_evaluator
