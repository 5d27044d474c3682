# ReferIt / refclef (Berkeley splits): refer-toolkit layout under data/
# (see README); its own image folder.
_base_ = ['./refer.py']
refer_files = dict(
    ann_file='refclef/instances.json', refs_file='refclef/refs(berkeley).p',
    data_prefix=dict(img_path='images/saiapr_tc-12'))
train_dataloader = dict(dataset=refer_files)
val_dataloader = dict(dataset=refer_files)
test_dataloader = dict(dataset=dict(refer_files, split=['val', 'test']))
