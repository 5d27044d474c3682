# PPT on RefCOCO (UNC) with its multi-source curriculum: COCO train2014
# instance crops -> whole COCO images per category -> RefCOCO train
# (configs/_base_/datasets/ppt_curriculum_refcoco.py), CLIP RN50 + SAM
# ViT-H frozen (local weights: clip_weights, model.sam.checkpoint).
_base_ = ['../_base_/models/ppt_clip-r50_sam-vit-h.py',
          '../_base_/datasets/ppt_curriculum_refcoco.py',
          '../_base_/schedules/ppt_40k.py']
