_base_ = ['../_base_/models/ppt_clip-r50_sam-vit-h.py',
          '../_base_/datasets/refcoco+_unc.py',
          '../_base_/schedules/tris_15e.py']
# ---- Curriculum: PPT's multi-source curriculum (object-centric images
# first, then referring data) replaces this train_dataloader. Until it is
# wired in, training uses the referring data only. ----
train_dataloader = dict(batch_size=16)
# Only the point generator trains (frozen CLIP and SAM): a higher lr than
# TRIS's 5e-5 (our choice; the paper's is unknown).
optim_wrapper = dict(optimizer=dict(lr=1e-4))
