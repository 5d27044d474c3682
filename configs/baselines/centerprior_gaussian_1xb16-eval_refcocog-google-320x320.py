_base_ = ['../_base_/models/center_prior.py',
          '../_base_/datasets/refcocog_google.py', '../_base_/schedules/eval_only.py']
train_dataloader = None  # evaluation only: nothing to train
