# The class-agnostic toy mask corpus
# (tools/dataset_converters/make_toy_masks.py --out data/toy_masks).
dataset_type = 'SAMMaskDataset'
data_root = 'data/toy_masks'
sam_image_size = 128

load_record = dict(type='LoadSAMMaskRecord')
pack = dict(type='PackSAMInputs')
train_pipeline = [
    load_record,
    dict(type='SAMResizeLongestSide', size=sam_image_size), pack
]
test_pipeline = [
    load_record,
    dict(type='SAMResizeLongestSide', size=sam_image_size,
         keep_original=True), pack
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='SAMPromptMetric')
test_evaluator = val_evaluator
