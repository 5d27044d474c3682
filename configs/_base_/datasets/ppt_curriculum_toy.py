# PPT's multi-source curriculum on the toy world (docs/toy_world.md):
# object-centric toy captions -> class-level toy images (one sample per
# (image, class), text = the class name) -> toy referring expressions.
# Write the corpora with tools/dataset_converters/make_toy_corpora.py --out
# data/toy_corpora and the refer data with make_toy_refer.py.
# The ratios and switch points are our choice (PPT released no code); they
# assume a 1000-iteration schedule. Training must be iteration-based
# (train_cfg = dict(type='IterBasedTrainLoop', ...)): CurriculumHook checks.
_base_ = ['./toy_refer.py']
load_image, resize, pack = _base_.load_image, _base_.resize, _base_.pack
load_annotations = _base_.load_annotations
# Negatives: other class names of the image (else of the dataset), other
# captions; never the positive text (SampleNegativeTexts' rule).
context_negatives = [
    dict(type='SampleNegativeTexts', mode='same_image_with_replacement',
         num_negatives=3)
]
caption_pipeline = context_negatives + load_image + resize + pack
class_pipeline = context_negatives + load_image + load_annotations + \
    resize + pack
refer_pipeline = _base_.train_pipeline
# The same with the precomputed SAM embeddings
# (tools/precompute_sam_embeddings.py CONFIG --sam-arch vit_toy
# --sam-checkpoint data/toy_world/sam-toy_toymasks.pth writes every store).
sam_embedding_root = 'data/toy_sam_embeddings'
load_sam_captions = [dict(type='LoadSAMEmbedding',
                          embedding_dir=sam_embedding_root + '/captions')]
load_sam_classes = [dict(type='LoadSAMEmbedding',
                         embedding_dir=sam_embedding_root + '/classes')]
load_sam_refer = [dict(type='LoadSAMEmbedding',
                       embedding_dir=sam_embedding_root + '/refer')]
caption_sam_pipeline = context_negatives + load_image + load_sam_captions + \
    resize + pack
class_sam_pipeline = context_negatives + load_image + load_sam_classes + \
    load_annotations + resize + pack
refer_sam_pipeline = _base_.sample_negatives + load_image + \
    load_sam_refer + load_annotations + resize + pack
# Evaluation with the stored embeddings (the tool with --loader val / test
# adds the val/test images to the refer store):
#   val_dataloader = dict(dataset=dict(pipeline=test_sam_pipeline))
test_sam_pipeline = load_image + load_sam_refer + resize + \
    load_annotations + pack

caption_source = dict(
    type='ObjectCentricCaptionDataset',
    data_root='data/toy_corpora/captions',
    ann_file='captions_train.csv',
    pipeline=caption_pipeline)
class_source = dict(
    type='ClassInstanceDataset',
    data_root='data/toy_corpora/classes',
    ann_file='instances_train.json',
    data_prefix=dict(img_path='images'),
    mode='image',
    pipeline=class_pipeline)
refer_source = dict(_base_.refer_files, type='RefCOCODataset',
                    split='train', pipeline=refer_pipeline)
curriculum_sources = dict(
    captions=caption_source, classes=class_source, refer=refer_source)
# What a config swaps in to read the SAM embeddings:
#   train_dataloader = dict(dataset=dict(sources=curriculum_sam_sources))
curriculum_sam_sources = dict(
    captions=dict(caption_source, pipeline=caption_sam_pipeline),
    classes=dict(class_source, pipeline=class_sam_pipeline),
    refer=dict(refer_source, pipeline=refer_sam_pipeline))
curriculum_schedule = [
    dict(name='captions', begin=0, ratios=dict(captions=1.0)),
    dict(name='classes', begin=150, ratios=dict(captions=0.3, classes=0.7)),
    dict(name='refer', begin=400,
         ratios=dict(captions=0.1, classes=0.2, refer=0.7)),
]
train_batch_size = 16
train_dataloader = dict(
    _delete_=True,
    batch_size=train_batch_size,
    num_workers=0,
    persistent_workers=False,
    # One source per iteration (the whole batch); batch_size must equal
    # the dataloader's.
    sampler=dict(type='CurriculumSampler', batch_size=train_batch_size,
                 schedule=curriculum_schedule),
    dataset=dict(type='CurriculumDataset', sources=curriculum_sources))
# Checks the batch size and the loop; logs curriculum/stage, ratio_* and
# src_* (the measured share of each source over the logging window).
custom_hooks = [dict(type='CurriculumHook')]
