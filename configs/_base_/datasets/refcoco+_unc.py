# RefCOCO+ (UNC splits): refer-toolkit layout under data/ (see README, "Data preparation").
dataset_type = 'RefCOCODataset'
data_root = 'data'
ann_file = 'refcoco+/instances.json'
refs_file = 'refcoco+/refs(unc).p'
img_prefix = 'images/mscoco/images/train2014'
crop_size = (320, 320)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRISAnnotations'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='PackRISInputs'),
]
# The mask is loaded after Resize so that metrics see it at original size.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadRISAnnotations'),
    dict(type='PackRISInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_file,
        refs_file=refs_file,
        data_prefix=dict(img_path=img_prefix),
        split='train',
        num_negatives=3,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_file,
        refs_file=refs_file,
        data_prefix=dict(img_path=img_prefix),
        split='val',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_file,
        refs_file=refs_file,
        data_prefix=dict(img_path=img_prefix),
        split=['val', 'testA', 'testB'],
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='RISMetric')
test_evaluator = val_evaluator
