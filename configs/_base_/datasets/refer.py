# The referring datasets in the refer-toolkit layout under data/ (README,
# "Data preparation"). Each dataset file inherits this one and sets its
# files (``refer_files``) and test splits; the defaults are COCO's image
# folder, 320x320 inputs and batch 16.
crop_size = (320, 320)

# Named pipeline pieces; configs compose them (no splicing by index).
load_image = [dict(type='LoadImageFromFile')]
load_annotations = [dict(type='LoadRISAnnotations')]
resize = [dict(type='Resize', scale=crop_size, keep_ratio=False)]
pack = [dict(type='PackRISInputs')]
# PCNet's inputs: phrases 1-2 (the 3rd stage uses the sentence) and the
# proposals of the dataset's proposal_dir (with their CLIP similarities).
pcnet_loading = [
    dict(type='LoadPhrases', num_phrases=2),
    dict(type='LoadProposals', num_proposals=40),
]
# What a training sample draws from the other refs of its image, with its
# own generator (KeyedDefaultSampler keys): TRIS's calibration negatives
# (as the released code: K = 3 other refs of the same image, with
# replacement, random refs of the split when there is none) and PCNet's
# IaD partner. PCNet keeps K = 6 distinct refs topped up from other images.
sample_negatives = [
    dict(type='SampleNegativeTexts', mode='same_image_with_replacement',
         num_negatives=3)
]
pcnet_sample_negatives = [dict(type='SampleNegativeTexts', num_negatives=6)]
sample_partner = [dict(type='SampleIaDPartner')]
# Training resizes the mask (and PCNet's proposals) with the image; testing
# loads them after Resize so that metrics see them at the original size.
train_loading = load_image + load_annotations + resize + pack
train_pipeline = sample_negatives + train_loading
test_pipeline = load_image + resize + load_annotations + pack
pcnet_train_pipeline = pcnet_sample_negatives + sample_partner + \
    load_image + load_annotations + pcnet_loading + resize + pack
pcnet_test_pipeline = load_image + resize + load_annotations + \
    pcnet_loading + pack

refer_dataset = dict(
    type='RefCOCODataset',
    data_root='data',
    data_prefix=dict(img_path='images/mscoco/images/train2014'))
# Loader workers keep running between epochs; batches are pinned so the
# host-to-GPU copy is asynchronous.
loader = dict(batch_size=16, num_workers=4, persistent_workers=True,
              pin_memory=True)
train_dataloader = dict(
    loader,
    # DefaultSampler whose indices carry each sample's draw key, so that
    # resumed training repeats every random draw.
    sampler=dict(type='KeyedDefaultSampler', shuffle=True),
    dataset=dict(refer_dataset, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    loader,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        refer_dataset, split='val', test_mode=True, pipeline=test_pipeline))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], split=['val', 'testA', 'testB']))
val_evaluator = dict(type='RISMetric')
test_evaluator = val_evaluator
