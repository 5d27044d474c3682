# PPT on refcocog (GOOGLE splits) with the curriculum of the RefCOCO config:
# the class-level sources read refcocog's COCO instances (all train2014)
# without the images of its evaluation refs; the referring source and the
# evaluation read refcocog.
_base_ = ['./ppt_clip-r50-sam-vit-h_1xb16-40k_refcoco-unc-320x320.py']
refer_files = dict(
    ann_file='refcocog/instances.json', refs_file='refcocog/refs(google).p')
exclude_refs = [dict(refs_file=refer_files['refs_file'],
                     splits=['val'])]
coco_files = dict(ann_file=refer_files['ann_file'], exclude_refs=exclude_refs)
train_dataloader = dict(dataset=dict(sources=dict(
    crops=coco_files, images=coco_files, refer=refer_files)))
val_dataloader = dict(dataset=refer_files)
test_dataloader = dict(dataset=dict(refer_files, split=['val']))
