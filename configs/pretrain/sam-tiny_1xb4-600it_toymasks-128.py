# Tiny SAM (vit_toy) pretrained on the toy mask corpus; export with
# tools/model_converters/export_sam.py, see docs/toy_sam.md.
_base_ = [
    '../_base_/models/sam_toy.py', '../_base_/datasets/toy_masks.py',
    '../_base_/schedules/sam_toy_600it.py'
]
# The pretraining components are not imported with mmwris.
custom_imports = dict(
    imports=['mmwris', 'mmwris.datasets.sam_mask_dataset',
             'mmwris.evaluation.metrics.sam_prompt_metric',
             'mmwris.models.pretrain'],
    allow_failed_imports=False)
