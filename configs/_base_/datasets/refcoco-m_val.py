# RefCOCO (UNC splits) training + evaluation on RefCOCO val *and* RefCOCO-M
# val (moondream/refcoco-m, converted by tools/dataset_converters/refcoco_m.py
# to data/refcoco-m/; README, "Data preparation"). One tools/test.py run
# reports val/... (RefCOCO) and refcoco-m_val/... (RefCOCO-M).
_base_ = ['./refer.py']
refer_files = dict(
    ann_file='refcoco/instances.json', refs_file='refcoco/refs(unc).p')
refcoco_val = dict(_base_.val_dataloader.dataset, **refer_files)
refcocom_val = dict(
    refcoco_val, type='RefCOCOMDataset', split_label='refcoco-m_val',
    ann_file='refcoco-m/instances.json', refs_file='refcoco-m/refs(unc).p',
    data_prefix=dict(img_path='refcoco-m/images'))
train_dataloader = dict(dataset=refer_files)
val_dataloader = dict(dataset=refer_files)
test_dataloader = dict(dataset=dict(
    _delete_=True, type='ConcatDataset',
    datasets=[refcoco_val, refcocom_val]))
