# PPT's multi-source curriculum for RefCOCO (UNC): object-centric COCO
# train2014 instance crops (text = the category name) -> whole COCO images,
# one sample per (image, category present) -> RefCOCO (UNC) train.
# The class-level sources read the COCO instances that RefCOCO ships
# (refcoco/instances.json: every instance of its images) and drop the
# images of RefCOCO's val/testA/testB refs (they are train2014 images too).
# For RefCOCO+ / G-Ref, point refer_files and exclude_refs at their files.
# The ratios and switch points are our choice (PPT released no code) for
# about 40k iterations of batch 16 (15 epochs of RefCOCO train). Training
# must be iteration-based (train_cfg = dict(type='IterBasedTrainLoop',
# ...)): CurriculumHook checks.
_base_ = ['./refcoco_unc.py']
load_image, resize, pack = _base_.load_image, _base_.resize, _base_.pack
load_annotations = _base_.load_annotations
context_negatives = [
    dict(type='SampleNegativeTexts', mode='same_image_with_replacement',
         num_negatives=3)
]
crop = [dict(type='CropToBox')]
crop_pipeline = context_negatives + load_image + load_annotations + crop + \
    resize + pack
image_pipeline = context_negatives + load_image + load_annotations + \
    resize + pack
refer_pipeline = _base_.train_pipeline
# The same with the precomputed SAM embeddings (tools/
# precompute_sam_embeddings.py CONFIG --sam-checkpoint
# checkpoints/sam_vit_h_4b8939.pth writes every store; the COCO images and
# RefCOCO share one store, keyed by image_id; crops have their own keys).
sam_embedding_root = 'data/sam_embeddings/vit_h'
load_sam_coco = [dict(type='LoadSAMEmbedding',
                      embedding_dir=sam_embedding_root + '/coco_train2014')]
load_sam_crops = [dict(type='LoadSAMEmbedding',
                       embedding_dir=sam_embedding_root + '/coco_crops')]
crop_sam_pipeline = context_negatives + load_image + load_sam_crops + \
    load_annotations + crop + resize + pack
image_sam_pipeline = context_negatives + load_image + load_sam_coco + \
    load_annotations + resize + pack
refer_sam_pipeline = _base_.sample_negatives + load_image + load_sam_coco + \
    load_annotations + resize + pack
# Evaluation with the stored embeddings (the tool with --loader val / test
# adds the val/test images to the COCO store):
#   val_dataloader = dict(dataset=dict(pipeline=test_sam_pipeline))
test_sam_pipeline = load_image + load_sam_coco + resize + \
    load_annotations + pack

coco_instances = dict(
    type='ClassInstanceDataset',
    data_root='data',
    ann_file='refcoco/instances.json',
    data_prefix=dict(img_path='images/mscoco/images/train2014'),
    exclude_refs=[dict(refs_file='refcoco/refs(unc).p',
                       splits=['val', 'testA', 'testB'])])
crop_source = dict(coco_instances, mode='crop', crop_margin=0.1,
                   min_box_size=32, pipeline=crop_pipeline)
image_source = dict(coco_instances, mode='image', pipeline=image_pipeline)
refer_source = dict(_base_.refer_dataset, **_base_.refer_files,
                    split='train', pipeline=refer_pipeline)
curriculum_sources = dict(
    crops=crop_source, images=image_source, refer=refer_source)
curriculum_sam_sources = dict(
    crops=dict(crop_source, pipeline=crop_sam_pipeline),
    images=dict(image_source, pipeline=image_sam_pipeline),
    refer=dict(refer_source, pipeline=refer_sam_pipeline))
curriculum_schedule = [
    dict(name='crops', begin=0, ratios=dict(crops=1.0)),
    dict(name='images', begin=4000, ratios=dict(crops=0.5, images=0.5)),
    dict(name='refer', begin=10000,
         ratios=dict(crops=0.1, images=0.2, refer=0.7)),
]
train_batch_size = 16
train_dataloader = dict(
    _delete_=True,
    batch_size=train_batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='CurriculumSampler', batch_size=train_batch_size,
                 schedule=curriculum_schedule),
    dataset=dict(type='CurriculumDataset', sources=curriculum_sources))
custom_hooks = [dict(type='CurriculumHook')]
