# Synthetic shapes in the refer-toolkit layout, written by
# tools/dataset_converters/make_toy_refer.py (see README, "Toy data").
dataset_type = 'RefCOCODataset'
data_root = 'data/toy_refer'
ann_file = 'toyref/instances.json'
refs_file = 'toyref/refs(synth).p'
img_prefix = 'images'
crop_size = (128, 128)

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
    batch_size=32,
    num_workers=0,
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
    batch_size=32,
    num_workers=0,
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
    batch_size=32,
    num_workers=0,
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
