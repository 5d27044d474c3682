# Object-centric image-caption pairs written by
# tools/dataset_converters/make_toy_corpora.py (docs/toy_world.md): open_clip
# CSV files (tab separated, columns filepath / title / label), 128x128
# inputs, batch 64, loaded in the main process.
crop_size = (128, 128)
# The zero-shot classes: the toy shape-colour classes, in the corpus order.
toy_colours = ['red', 'green', 'blue', 'yellow', 'purple']
toy_shapes = ['circle', 'square', 'triangle', 'plus']
toy_classes = [f'{colour} {shape}' for colour in toy_colours
               for shape in toy_shapes]
caption_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='PackRISInputs'),
]
caption_dataset = dict(
    type='CaptionDataset',
    data_root='data/toy_corpora/captions',
    metainfo=dict(classes=toy_classes),
    pipeline=caption_pipeline)
loader = dict(batch_size=64, num_workers=0, persistent_workers=False)
train_dataloader = dict(
    loader,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(caption_dataset, ann_file='captions_train.csv'))
val_dataloader = dict(
    loader,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(caption_dataset, ann_file='captions_val.csv',
                 test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='CLIPRetrievalMetric', topk=(1, 5))
test_evaluator = val_evaluator
