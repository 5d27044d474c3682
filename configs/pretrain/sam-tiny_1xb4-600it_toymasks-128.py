# Tiny SAM (vit_toy) pretrained on the toy mask corpus (measured: one-point
# mIoU 56.7, box 63.8 on toy val in 4 min 38 s on 2 shared CPU cores);
# export with tools/model_converters/export_sam.py, see docs/toy_sam.md.
_base_ = [
    '../_base_/models/sam_toy.py', '../_base_/datasets/toy_masks.py',
    '../_base_/schedules/sam_toy_600it.py'
]
# The SAM mask dataset, its pipeline and the metric are not imported with
# mmwris.
custom_imports = dict(
    imports=['mmwris', 'mmwris.datasets.sam_mask_dataset',
             'mmwris.evaluation.metrics.sam_prompt_metric',
             'mmwris.models.pretrain'],
    allow_failed_imports=False)
