"""RefCOCODataset on the real RefCOCOg-umd subset, and its bad-input errors."""
import pickle
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mmwris.registry import DATASETS

TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 320), keep_ratio=False),
    dict(type='LoadRISAnnotations'),
    dict(type='PackRISInputs'),
]


def build(root, **kwargs):
    cfg = dict(type='RefCOCODataset', data_root=str(root),
               refs_file='refs(umd).p', ann_file='instances.json',
               data_prefix=dict(img_path='images'), pipeline=TEST_PIPELINE)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def load_records(root):
    with open(root / 'refs(umd).p', 'rb') as f:
        refs = pickle.load(f)
    coco = json.loads((root / 'instances.json').read_text())
    return refs, coco


@pytest.mark.parametrize('split,num_sentences', [('val', 10), ('test', 9)])
def test_every_expression_is_a_test_sample(real_refer_root, split,
                                           num_sentences):
    dataset = build(real_refer_root, split=split, test_mode=True)
    refs, _ = load_records(real_refer_root)
    expected = [(r['ref_id'], s['sent_id'], s['sent']) for r in refs
                if r['split'] == split for s in r['sentences']]
    assert len(dataset) == num_sentences == len(expected)
    got = [(dataset.get_data_info(i)['ref_id'],
            dataset.get_data_info(i)['sent_id'],
            dataset.get_data_info(i)['text']) for i in range(len(dataset))]
    assert got == expected


def test_masks_boxes_match_pycocotools(real_refer_root):
    refs, coco = load_records(real_refer_root)
    anns = {a['id']: a for a in coco['annotations']}
    images = {i['id']: i for i in coco['images']}
    dataset = build(real_refer_root, split=['val', 'test'], test_mode=True)
    assert len(dataset) == 19
    multi_part_seen = False
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        ann = anns[sample.ann_id]
        img = images[sample.image_id]
        rles = mask_utils.frPyObjects(ann['segmentation'], img['height'],
                                      img['width'])
        expected = mask_utils.decode(mask_utils.merge(rles))
        gt = sample.gt_sem_seg.data[0].numpy()
        assert gt.shape == (img['height'], img['width'])
        np.testing.assert_array_equal(gt, expected)
        assert gt.sum() == mask_utils.area(mask_utils.merge(rles))
        x, y, w, h = ann['bbox']
        np.testing.assert_allclose(sample.gt_bbox, [x, y, x + w, y + h])
        assert sample.ori_shape == (img['height'], img['width'])
        assert sample.split in ('val', 'test')
        multi_part_seen |= len(ann['segmentation']) > 1
    assert multi_part_seen, 'the laptop ref (2 polygon parts) is in val'


def test_training_samples_one_per_ref_with_negatives(real_refer_root):
    pipeline = [
        dict(type='SampleNegativeTexts', num_negatives=4),
        dict(type='LoadImageFromFile'),
        dict(type='LoadRISAnnotations'),
        dict(type='Resize', scale=(64, 64), keep_ratio=False),
        dict(type='PackRISInputs'),
    ]
    dataset = build(real_refer_root, split='train', pipeline=pipeline)
    refs, _ = load_records(real_refer_root)
    train = {r['ref_id']: r for r in refs if r['split'] == 'train'}
    assert len(dataset) == len(train) == 5
    seen = set()
    for _ in range(30):
        sample = dataset[0]['data_samples']
        ref = train[sample.ref_id]
        assert sample.text in [s['sent'] for s in ref['sentences']]
        assert len(sample.neg_texts) == 4
        own = {s['sent'] for s in ref['sentences']}
        assert not own & set(sample.neg_texts)
        assert sample.gt_sem_seg.data.shape[-2:] == (64, 64)
        seen.add(sample.sent_id)
    assert seen == set(train[dataset[0]['data_samples'].ref_id]['sent_ids'])


def test_negatives_prefer_same_image(tmp_path, real_refer_root):
    refs, coco = load_records(real_refer_root)
    # Put a second ref on the image of the first train ref.
    first = next(r for r in refs if r['split'] == 'train')
    other_ann = next(a for a in coco['annotations']
                     if a['image_id'] == first['image_id']
                     and a['id'] != first['ann_id'])
    extra = dict(first, ref_id=999999, ann_id=other_ann['id'],
                 sent_ids=[1], sentences=[dict(sent='the other object',
                                               raw='the other object',
                                               sent_id=1, tokens=[])])
    with open(real_refer_root / 'refs(umd).p', 'wb') as f:
        pickle.dump(refs + [extra], f)
    negatives = [dict(type='SampleNegativeTexts', num_negatives=3)]
    dataset = build(real_refer_root, split='train',
                    pipeline=negatives + TEST_PIPELINE)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if info['ref_id'] == first['ref_id']:
            for _ in range(5):
                sample = dataset[i]['data_samples']
                assert sample.neg_texts[0] == 'the other object'


def test_num_negatives_moved_to_the_pipeline(real_refer_root):
    with pytest.raises(TypeError, match='SampleNegativeTexts'):
        build(real_refer_root, split='train', num_negatives=3)


def test_unknown_split(real_refer_root):
    with pytest.raises(ValueError, match=r'Unknown split "testA".*refs\(umd\)'):
        build(real_refer_root, split='testA', test_mode=True)


def test_missing_image(real_refer_root):
    (real_refer_root / 'images' / 'COCO_train2014_000000538737.jpg').unlink()
    with pytest.raises(FileNotFoundError,
                       match='COCO_train2014_000000538737.jpg.*ref_id=46077'):
        build(real_refer_root, split='val', test_mode=True)


def test_unreadable_image(real_refer_root):
    (real_refer_root / 'images' /
     'COCO_train2014_000000538737.jpg').write_bytes(b'not a jpeg')
    dataset = build(real_refer_root, split='val', test_mode=True)
    index = next(i for i in range(len(dataset))
                 if dataset.get_data_info(i)['ref_id'] == 46077)
    with pytest.raises(Exception,
                       match='ref_id=46077.*COCO_train2014_000000538737'):
        dataset[index]


def test_ann_id_not_in_instances(real_refer_root):
    refs, _ = load_records(real_refer_root)
    refs[0]['ann_id'] = 123
    with open(real_refer_root / 'refs(umd).p', 'wb') as f:
        pickle.dump(refs, f)
    with pytest.raises(KeyError, match=f'ref_id={refs[0]["ref_id"]}.*'
                       r'ann_id=123.*instances.json'):
        build(real_refer_root, split=refs[0]['split'], test_mode=True)


def test_empty_expression(real_refer_root):
    refs, _ = load_records(real_refer_root)
    refs[1]['sentences'][0]['sent'] = '  '
    with open(real_refer_root / 'refs(umd).p', 'wb') as f:
        pickle.dump(refs, f)
    sent_id = refs[1]['sentences'][0]['sent_id']
    with pytest.raises(ValueError, match=f'ref_id={refs[1]["ref_id"]}.*'
                       f'sent_id={sent_id} is an empty expression'):
        build(real_refer_root, split=refs[1]['split'], test_mode=True)


@pytest.mark.parametrize('content', [b'garbage bytes', pickle.dumps({'a': 1}),
                                     pickle.dumps([{'ref_id': 1}])])
def test_not_a_refer_pickle(real_refer_root, content):
    (real_refer_root / 'refs(umd).p').write_bytes(content)
    with pytest.raises(ValueError, match=r'refs\(umd\).p is not a refer'):
        build(real_refer_root, split='val', test_mode=True)


def test_plain_flip_rejected(real_refer_root):
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='RandomFlip', prob=0.5),
                dict(type='PackRISInputs')]
    with pytest.raises(ValueError, match='RandomFlipWithText'):
        build(real_refer_root, split='train', pipeline=pipeline)
