"""Mask loading with geometric transforms, the text-aware flip, packing."""
import numpy as np
import pytest
from mmcv.transforms import Compose

from mmwris.datasets.transforms import swap_left_right


def toy_results(height=40, width=60):
    """An image whose left half is dark and an object box at x 5..20."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :width // 2] = 50
    polygon = [[5.0, 10.0, 20.0, 10.0, 20.0, 30.0, 5.0, 30.0]]
    return dict(
        img=img, img_shape=(height, width), ori_shape=(height, width),
        img_path='x.png', height=height, width=width,
        segmentation=polygon, gt_bbox=[5.0, 10.0, 20.0, 30.0],
        text='the box on the left', neg_texts=['Right one', 'top thing'],
        ref_id=1, sent_id=2, ann_id=3, image_id=4, split='val')


def test_mask_follows_resize_without_aspect():
    pipeline = Compose([
        dict(type='LoadRISAnnotations'),
        dict(type='Resize', scale=(30, 20), keep_ratio=False),
    ])
    results = pipeline(toy_results())
    assert results['img'].shape[:2] == (20, 30)
    assert results['gt_seg_map'].shape == (20, 30)
    ys, xs = np.nonzero(results['gt_seg_map'])
    # the 15x20 object at x 5..19, y 10..29 halves in both axes
    np.testing.assert_allclose(
        [xs.min(), xs.max() + 1, ys.min(), ys.max() + 1], [2.5, 10, 5, 15],
        atol=1)
    np.testing.assert_allclose(results['gt_bboxes'], [[2.5, 5, 10, 15]])
    assert results['gt_bbox'] == [5.0, 10.0, 20.0, 30.0]


def test_mask_follows_resize_keeping_aspect():
    pipeline = Compose([
        dict(type='LoadRISAnnotations'),
        dict(type='Resize', scale=(120, 120), keep_ratio=True),
    ])
    results = pipeline(toy_results())
    assert results['img'].shape[:2] == (80, 120)
    assert results['gt_seg_map'].shape == (80, 120)
    assert results['gt_seg_map'].sum() == pytest.approx(30 * 40, rel=0.1)


def test_swap_left_right_words():
    assert swap_left_right('Left man, right of the leftmost dog') == \
        'Right man, left of the rightmost dog'
    assert swap_left_right('bright lefty') == 'bright lefty'


def test_flip_with_text_moves_mask_and_swaps_words():
    pipeline = Compose([
        dict(type='LoadRISAnnotations'),
        dict(type='RandomFlipWithText', prob=1.0),
    ])
    results = pipeline(toy_results())
    assert results['flip'] and results['flip_direction'] == 'horizontal'
    ys, xs = np.nonzero(results['gt_seg_map'])
    assert (xs.min(), xs.max()) == (60 - 20, 60 - 6)
    assert results['img'][:, -1, 0].max() == 50
    np.testing.assert_allclose(results['gt_bboxes'], [[40, 10, 55, 30]])
    assert results['text'] == 'the box on the right'
    assert results['neg_texts'] == ['Left one', 'top thing']


def test_flip_with_text_prob_zero_is_identity():
    results = Compose([dict(type='RandomFlipWithText', prob=0.0)])(
        toy_results())
    assert results['text'] == 'the box on the left'


def test_pack_carries_text_ids_and_gt():
    pipeline = Compose([
        dict(type='LoadRISAnnotations'),
        dict(type='PackRISInputs'),
    ])
    packed = pipeline(toy_results())
    sample = packed['data_samples']
    assert packed['inputs'].shape == (3, 40, 60)
    assert sample.text == 'the box on the left'
    assert sample.neg_texts == ['Right one', 'top thing']
    assert (sample.ref_id, sample.sent_id, sample.ann_id, sample.image_id,
            sample.split) == (1, 2, 3, 4, 'val')
    assert sample.gt_bbox == [5.0, 10.0, 20.0, 30.0]
    assert sample.gt_sem_seg.data.shape == (1, 40, 60)
    assert int(sample.gt_sem_seg.data.sum()) == 15 * 20


def test_pack_requires_text():
    results = toy_results()
    del results['text']
    with pytest.raises(KeyError, match='text'):
        Compose([dict(type='PackRISInputs')])(results)


def test_rle_segmentation_decodes():
    from pycocotools import mask as mask_utils
    mask = np.zeros((40, 60), np.uint8, order='F')
    mask[3:9, 7:12] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle['counts'] = rle['counts'].decode('ascii')
    results = toy_results()
    results['segmentation'] = rle
    out = Compose([dict(type='LoadRISAnnotations')])(results)
    np.testing.assert_array_equal(out['gt_seg_map'], mask)


def test_bad_segmentation_names_annotation():
    results = toy_results()
    results['segmentation'] = 'nonsense'
    with pytest.raises(ValueError, match='ann_id=3'):
        Compose([dict(type='LoadRISAnnotations')])(results)


def test_pack_gives_a_ris_data_sample_with_typed_fields():
    """PackRISInputs packs a RISDataSample: its referring properties read
    the metainfo keys of mmwris.structures.fields, None when unset."""
    from mmseg.structures import SegDataSample

    from mmwris.structures import RISDataSample
    from mmwris.structures import fields as F
    results = toy_results()
    results.update(phrases=['a box', 'the box'], partner_text=None)
    sample = Compose([dict(type='LoadRISAnnotations'),
                      dict(type='PackRISInputs')])(results)['data_samples']
    assert type(sample) is RISDataSample
    assert isinstance(sample, SegDataSample)
    assert sample.phrases == sample.metainfo[F.PHRASES] == ['a box',
                                                            'the box']
    assert F.PARTNER_TEXT in sample and sample.partner_text is None
    # Unset PCNet fields: None through the property, absent otherwise.
    assert sample.proposal_clip_sim is None
    assert F.PROPOSAL_CLIP_SIM not in sample
    assert sample.metainfo.get(F.PROPOSAL_CLIP_SIM) is None
    assert sample.get(F.PROPOSAL_CLIP_SIM, 'unset') == 'unset'
    assert not sample.has_proposals and sample.proposals is None
    assert sample.negatives == ['Right one', 'top thing']
    assert sample.gt_sem_seg.data.shape == (1, 40, 60)


def test_ris_data_sample_assignment_is_metainfo_and_survives_copies():
    import copy
    import pickle

    import torch
    from mmengine.structures import PixelData

    from mmwris.structures import RISDataSample
    sample = RISDataSample(metainfo=dict(text='the dog'))
    sample.neg_texts = ['a cat']
    assert set(sample.metainfo_keys()) == {'neg_texts', 'text'}
    assert 'neg_texts' not in sample.keys()
    sample.set_data(dict(gt_proposals=PixelData(data=torch.ones(2, 3, 3))))
    assert sample.has_proposals and 'gt_proposals' in sample
    for other in (copy.deepcopy(sample), pickle.loads(pickle.dumps(sample)),
                  sample.clone()):
        assert other.text == 'the dog' and other.neg_texts == ['a cat']
        assert other.proposals.data.shape == (2, 3, 3)
    new = sample.new(metainfo=dict(text='a bird'))
    assert (new.text, sample.text) == ('a bird', 'the dog')
    del sample.neg_texts
    assert 'neg_texts' not in sample and sample.neg_texts is None
