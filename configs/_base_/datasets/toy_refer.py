# Synthetic shapes in the refer-toolkit layout, written by
# tools/dataset_converters/make_toy_refer.py (see README, "Toy data"):
# 128x128 inputs, batch 32, loaded in the main process.
_base_ = ['./refer.py']
crop_size = (128, 128)
resize = [dict(type='Resize', scale=crop_size, keep_ratio=False)]
load_image, load_annotations = _base_.load_image, _base_.load_annotations
# Three negatives on the toy data (2-5 objects per image).
sample_negatives = [dict(type='SampleNegativeTexts', num_negatives=3)]
train_loading = load_image + load_annotations + resize + _base_.pack
train_pipeline = sample_negatives + train_loading
test_pipeline = load_image + resize + load_annotations + _base_.pack
# The toy PCNet config composes its own (toy phrases and proposals).
pcnet_train_pipeline = pcnet_test_pipeline = None
refer_files = dict(
    data_root='data/toy_refer', ann_file='toyref/instances.json',
    refs_file='toyref/refs(synth).p', data_prefix=dict(img_path='images'))
loader = dict(batch_size=32, num_workers=0, persistent_workers=False)
train_dataloader = dict(
    loader, dataset=dict(refer_files, pipeline=train_pipeline))
val_dataloader = dict(loader, dataset=dict(refer_files, pipeline=test_pipeline))
test_dataloader = val_dataloader
