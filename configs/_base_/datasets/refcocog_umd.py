# RefCOCOg (UMD splits): refer-toolkit layout under data/ (see README).
_base_ = ['./refer.py']
refer_files = dict(
    ann_file='refcocog/instances.json', refs_file='refcocog/refs(umd).p')
train_dataloader = dict(dataset=refer_files)
val_dataloader = dict(dataset=refer_files)
test_dataloader = dict(dataset=dict(refer_files, split=['val', 'test']))
