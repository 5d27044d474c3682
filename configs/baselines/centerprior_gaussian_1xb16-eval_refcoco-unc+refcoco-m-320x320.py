_base_ = ['../_base_/models/center_prior.py',
          '../_base_/datasets/refcoco-m_val.py',
          '../_base_/schedules/eval_only.py']
train_dataloader = None  # evaluation only: RefCOCO val beside RefCOCO-M val
