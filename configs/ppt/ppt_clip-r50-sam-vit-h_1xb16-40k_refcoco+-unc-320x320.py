# PPT on refcoco+ (UNC splits) with the curriculum of the RefCOCO config:
# the class-level sources read refcoco+'s COCO instances (all train2014)
# without the images of its evaluation refs; the referring source and the
# evaluation read refcoco+.
_base_ = ['./ppt_clip-r50-sam-vit-h_1xb16-40k_refcoco-unc-320x320.py']
refer_files = dict(
    ann_file='refcoco+/instances.json', refs_file='refcoco+/refs(unc).p')
exclude_refs = [dict(refs_file=refer_files['refs_file'],
                     splits=['val', 'testA', 'testB'])]
coco_files = dict(ann_file=refer_files['ann_file'], exclude_refs=exclude_refs)
train_dataloader = dict(dataset=dict(sources=dict(
    crops=coco_files, images=coco_files, refer=refer_files)))
val_dataloader = test_dataloader = dict(dataset=refer_files)
