# RefCOCO (UNC splits): refer-toolkit layout under data/ (see README).
_base_ = ['./refer.py']
refer_files = dict(
    ann_file='refcoco/instances.json', refs_file='refcoco/refs(unc).p')
train_dataloader = dict(dataset=refer_files)
# Test: val, testA and testB (refer.py).
val_dataloader = test_dataloader = dict(dataset=refer_files)
