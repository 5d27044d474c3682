"""Tests of the RIS evaluation functions and ``RISMetric``.

Expected values are computed by hand on tiny arrays.
"""
import json
import logging

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmwris.evaluation import (RISMetric, box_iou, mask_intersection_union,
                               mask_iou, mask_to_box, point_in_box,
                               point_in_mask, response_peak)
from mmwris.registry import METRICS

H, W = 4, 5


def zeros(h=H, w=W, dtype=np.float32):
    return np.zeros((h, w), dtype=dtype)


def make_sample(response, pred, gt, box, **meta):
    """A ``SegDataSample.to_dict()``-style sample from [H, W] arrays."""
    sample = {
        'seg_logits': {
            'data': torch.as_tensor(response, dtype=torch.float32)[None]
        },
        'pred_sem_seg': {
            'data': torch.as_tensor(pred, dtype=torch.int64)[None]
        },
        'gt_sem_seg': {
            'data': torch.as_tensor(gt, dtype=torch.uint8)[None]
        },
        'gt_bbox': list(box),
        'ori_shape': tuple(np.shape(gt)),
    }
    sample.update(meta)
    return sample


def evaluate(samples, **kwargs):
    metric = RISMetric(**kwargs)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def two_samples():
    """Sample A: IoU 0.5, every hit missed; sample B: perfect."""
    gt_a = zeros(dtype=np.uint8)
    gt_a[0:2, 0:2] = 1  # 4 px, box [0, 0, 2, 2]
    pred_a = zeros(dtype=np.int64)
    pred_a[0:2, 0] = 1  # 2 px inside the GT: IoU 2 / 4, box IoU 2 / 4
    resp_a = zeros()
    resp_a[3, 4] = 1.0  # peak outside mask and box
    sample_a = make_sample(resp_a, pred_a, gt_a, [0, 0, 2, 2])

    gt_b = np.ones((H, W), dtype=np.uint8)  # 20 px, box [0, 0, 5, 4]
    sample_b = make_sample(zeros(), gt_b, gt_b, [0, 0, 5, 4])  # peak (0, 0)
    return sample_a, sample_b


TWO_SAMPLE_METRICS = {
    'PointM': 50.0,
    'PointIt': 50.0,
    'AccBox': 50.0,  # box IoU exactly 0.5 is a miss (> 0.5 required)
    'mIoU': 75.0,  # (0.5 + 1) / 2
    'oIoU': 91.67,  # (2 + 20) / (4 + 20)
    'Prec@0.5': 100.0,  # IoU exactly 0.5 counts
    'Prec@0.6': 50.0,
    'Prec@0.7': 50.0,
    'Prec@0.8': 50.0,
    'Prec@0.9': 50.0,
    'num_samples': 2,
}


# ---------------------------------------------------------------- functional


def test_response_peak_numpy_and_tensor():
    response = zeros()
    response[2, 3] = 5.0
    assert response_peak(response) == (2, 3)
    assert response_peak(torch.from_numpy(response)) == (2, 3)


def test_point_in_mask_inside_and_outside():
    response = zeros()
    response[1, 2] = 1.0
    gt = zeros(dtype=bool)
    gt[1, 1:3] = True
    assert point_in_mask(response, gt)
    response[1, 2], response[3, 0] = 0.0, 1.0
    assert not point_in_mask(response, gt)


@pytest.mark.parametrize('first_inside', [True, False])
def test_ties_first_maximum_in_raster_order_decides(first_inside):
    response = zeros()
    response[1, 4] = response[2, 0] = 3.0  # (1, 4) comes first
    gt = zeros(dtype=bool)
    gt[(1, 4) if first_inside else (2, 0)] = True
    assert response_peak(response) == (1, 4)
    assert point_in_mask(response, gt) is first_inside


def test_constant_map_peaks_at_origin():
    response = np.full((H, W), 0.7, dtype=np.float32)
    assert response_peak(response) == (0, 0)
    gt = zeros(dtype=bool)
    gt[0, 0] = True
    assert point_in_mask(response, gt)
    assert not point_in_mask(response, ~gt)


@pytest.mark.parametrize(
    'box, hit',
    [
        ([2.5, 1.5, 4.0, 3.0], True),  # centre on left / top edge
        ([0.0, 0.0, 2.5, 1.5], True),  # centre on right / bottom edge
        ([2.0, 1.0, 3.0, 2.0], True),  # the peak pixel itself
        ([2.6, 0.0, 5.0, 4.0], False),  # just right of the centre
        ([0.0, 0.0, 5.0, 1.4], False),  # just above the centre
        ([0.0, 2.0, 5.0, 4.0], False),
    ])
def test_point_in_box_boundaries(box, hit):
    response = zeros()
    response[1, 2] = 1.0  # peak (y=1, x=2): centre (2.5, 1.5)
    assert point_in_box(response, box) is hit
    assert point_in_box(response, torch.tensor(box)) is hit


def test_mask_to_box_largest_cc_vs_all():
    mask = zeros(dtype=bool)
    mask[0:2, 0:2] = True  # 4 px
    mask[3, 3:5] = True  # 2 px
    np.testing.assert_array_equal(
        mask_to_box(mask, 'largest_cc'), [0, 0, 2, 2])
    np.testing.assert_array_equal(mask_to_box(mask, 'all'), [0, 0, 5, 4])
    np.testing.assert_array_equal(mask_to_box(mask), [0, 0, 2, 2])


def test_mask_to_box_uses_8_connectivity():
    mask = zeros(dtype=bool)
    mask[[0, 1, 2], [0, 1, 2]] = True  # diagonal chain, 3 px
    mask[0:2, 4] = True  # vertical pair, 2 px
    np.testing.assert_array_equal(mask_to_box(mask), [0, 0, 3, 3])


def test_mask_to_box_single_pixel_empty_and_bad_mode():
    mask = zeros(dtype=bool)
    assert mask_to_box(mask) is None
    assert mask_to_box(mask, 'all') is None
    mask[2, 3] = True
    np.testing.assert_array_equal(mask_to_box(mask), [3, 2, 4, 3])
    np.testing.assert_array_equal(
        mask_to_box(torch.from_numpy(mask), 'all'), [3, 2, 4, 3])
    with pytest.raises(ValueError):
        mask_to_box(mask, 'biggest')


@pytest.mark.parametrize(
    'a, b, expected',
    [
        ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7),
        ([0, 0, 4, 4], [0, 0, 2, 4], 0.5),
        ([1, 2, 3, 5], [1, 2, 3, 5], 1.0),
        ([0, 0, 1, 1], [1, 0, 2, 1], 0.0),  # touching edges
        ([0, 0, 1, 1], [5, 5, 6, 6], 0.0),
        ([1, 1, 1, 1], [1, 1, 1, 1], 0.0),  # empty union
    ])
def test_box_iou(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)
    assert box_iou(np.array(b), torch.tensor(a)) == pytest.approx(expected)


def test_mask_intersection_union_and_iou():
    pred, gt = zeros(dtype=bool), zeros(dtype=bool)
    pred[0, 0:3] = True
    gt[0, 1:4] = True
    assert mask_intersection_union(pred, gt) == (2, 4)
    assert mask_iou(pred, gt) == pytest.approx(0.5)
    assert mask_iou(torch.from_numpy(pred), torch.from_numpy(gt)) == 0.5
    with pytest.raises(ValueError):
        mask_intersection_union(pred, gt[:, :4])


def test_mask_iou_empty_prediction_and_empty_union():
    empty, gt = zeros(dtype=bool), zeros(dtype=bool)
    gt[1, 1] = True
    assert mask_intersection_union(empty, gt) == (0, 1)
    assert mask_iou(empty, gt) == 0.0
    assert mask_intersection_union(empty, empty) == (0, 0)
    assert mask_iou(empty, empty) == 1.0


# -------------------------------------------------------------------- metric


def test_metric_is_registered():
    metric = METRICS.build(dict(type='RISMetric', box_mode='all'))
    assert isinstance(metric, RISMetric)
    with pytest.raises(ValueError):
        RISMetric(box_mode='biggest')


def test_oiou_and_miou_differ():
    assert evaluate(list(two_samples())) == TWO_SAMPLE_METRICS


def test_results_hold_only_small_values():
    metric = RISMetric()
    metric.process({}, list(two_samples()))
    for result in metric.results:
        for value in result.values():
            assert value is None or isinstance(value, (bool, int, float, str))
    assert metric.results[0]['intersection'] == 2
    assert metric.results[0]['union'] == 4


def test_empty_prediction_is_box_miss_and_zero_iou():
    gt = zeros(dtype=np.uint8)
    gt[1:3, 1:4] = 1
    response = zeros()
    response[2, 2] = 1.0
    sample = make_sample(response, zeros(dtype=np.int64), gt, [1, 1, 4, 3])
    metrics = evaluate([sample])
    assert metrics['AccBox'] == 0.0
    assert metrics['mIoU'] == 0.0
    assert metrics['oIoU'] == 0.0
    assert metrics['PointM'] == metrics['PointIt'] == 100.0


def test_empty_gt_and_prediction_gives_iou_one():
    empty = zeros(dtype=np.uint8)
    metrics = evaluate([make_sample(zeros(), empty, empty, [0, 0, 1, 1])])
    assert metrics['mIoU'] == 100.0
    assert metrics['Prec@0.9'] == 100.0
    assert metrics['oIoU'] == 0.0  # sum of unions is 0
    assert metrics['AccBox'] == 0.0


def test_grouping_by_split_with_prefixed_keys():
    sample_a, sample_b = two_samples()
    samples = [
        dict(sample_a, split='val'),
        dict(sample_b, split='testA'),
        dict(sample_b, split='val'),
    ]
    metrics = evaluate(samples)
    assert {k: metrics[f'val/{k}'] for k in TWO_SAMPLE_METRICS} == \
        TWO_SAMPLE_METRICS
    assert metrics['testA/mIoU'] == 100.0
    assert metrics['testA/num_samples'] == 1
    assert len(metrics) == 2 * len(TWO_SAMPLE_METRICS)
    assert 'mIoU' not in metrics


def test_samples_without_split_use_plain_keys():
    sample_a, sample_b = two_samples()
    metrics = evaluate([dict(sample_a, split='val'), sample_b])
    assert metrics['val/mIoU'] == 50.0
    assert metrics['mIoU'] == 100.0
    assert metrics['num_samples'] == 1


def test_metric_prefix():
    metrics = evaluate([dict(two_samples()[1], split='val')], prefix='ris')
    assert metrics['ris/val/mIoU'] == 100.0


def test_mask_threshold_overrides_pred_sem_seg():
    gt = zeros(dtype=np.uint8)
    gt[1:3, 1:3] = 1
    response = zeros()
    response[1:3, 1:3] = 0.8
    response[1, 1] = 0.5  # exactly at the threshold: foreground
    response[0, 4] = 0.4
    sample = make_sample(response, zeros(dtype=np.int64), gt, [1, 1, 3, 3])
    assert evaluate([sample])['mIoU'] == 0.0
    metrics = evaluate([sample], mask_threshold=0.5)
    assert metrics['mIoU'] == 100.0
    assert metrics['AccBox'] == 100.0
    assert evaluate([sample], mask_threshold=0.3)['mIoU'] == 80.0  # 4 / 5


def eval_size_sample():
    """4x4 sample whose 2x2 downscale differs from the original."""
    gt = zeros(4, 4, dtype=np.uint8)
    gt[0:2, 0:2] = 1  # nearest 2x2: [[1, 0], [0, 0]]
    response = zeros(4, 4)
    response[0:2, 0:2] = 0.4  # bilinear 2x2: [[0.4, 0.3], [0, 0]]
    response[0:2, 2:4] = 0.1
    response[0, 2] = 0.9  # original peak (0, 2), outside mask and box
    return make_sample(response, gt, gt, [0, 0, 2, 2])


def test_eval_size_resizes_before_computing():
    sample = eval_size_sample()
    original = evaluate([sample], mask_threshold=0.35)
    assert original['PointM'] == original['PointIt'] == 0.0
    assert original['mIoU'] == 80.0  # pred: GT block + (0, 2) -> 4 / 5

    resized = evaluate([sample], mask_threshold=0.35, eval_size=(2, 2))
    assert resized['PointM'] == 100.0  # peak (0, 0) on resized GT
    assert resized['PointIt'] == 100.0  # centre (0.5, 0.5) in [0, 0, 1, 1]
    assert resized['mIoU'] == resized['AccBox'] == 100.0

    metric = RISMetric(eval_size=(2, 2))
    metric.process({}, [sample])
    assert metric.results[0]['intersection'] == 1  # pred_sem_seg, nearest
    assert metric.results[0]['union'] == 1


def test_eval_size_validation():
    with pytest.raises(ValueError):
        RISMetric(eval_size=(0, 4))
    with pytest.raises(ValueError):
        RISMetric(eval_size=(4, 4, 4))


def test_accepts_seg_data_samples():
    sample_a, _ = two_samples()
    data_sample = SegDataSample(
        metainfo=dict(gt_bbox=sample_a['gt_bbox'], split='val'))
    for key in ('seg_logits', 'pred_sem_seg', 'gt_sem_seg'):
        setattr(data_sample, key, PixelData(data=sample_a[key]['data']))
    assert evaluate([data_sample])['val/mIoU'] == 50.0


def test_output_file_json_lines(tmp_path):
    sample_a, sample_b = two_samples()
    samples = [
        dict(sample_a, split='val', ref_id=7, sent_id=70, image_id=3),
        dict(sample_b, ref_id=torch.tensor(8), sent_id=np.int64(80)),
    ]
    out = tmp_path / 'sub' / 'per_sample.jsonl'
    evaluate(samples, output_file=str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [
        dict(
            split='val',
            ref_id=7,
            sent_id=70,
            image_id=3,
            iou=0.5,
            point_hit=False,
            pointit_hit=False,
            box_hit=False),
        dict(
            split=None,
            ref_id=8,
            sent_id=80,
            image_id=None,
            iou=1.0,
            point_hit=True,
            pointit_hit=True,
            box_hit=True),
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ['per_sample.jsonl']


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(
    'kwargs, meta, expected',
    [
        ({}, dict(mask_threshold=0.5), 'from the model: 0.5'),
        ({}, {}, 'from the model: unknown'),
        (dict(mask_threshold=0.35), dict(mask_threshold=0.5),
         'metric option: 0.35'),
    ])
def test_log_states_threshold_and_resolution(kwargs, meta, expected):
    logger = MMLogger.get_current_instance()
    records = _Records()
    logger.addHandler(records)
    try:
        evaluate([dict(eval_size_sample(), split='val', **meta)], **kwargs)
        evaluate([dict(eval_size_sample(), **meta)],
                 eval_size=(2, 2),
                 **kwargs)
    finally:
        logger.removeHandler(records)
    text = '\n'.join(records.messages)
    assert expected in text
    assert 'evaluation resolution: original' in text
    assert 'evaluation resolution: 2x2' in text
    assert 'PointM' in text and 'val' in text


def test_empty_results_raise():
    with pytest.raises(ValueError, match='no results'):
        RISMetric().compute_metrics([])


# ------------------------------------------- released TRIS protocol ('tris')
def test_released_boxes_nms_reads_xywh_as_xyxy():
    """Two contours whose rects overlap (IoU 16 / 156 > 0.05): true-xyxy NMS
    would drop the second; the released NMS reads (x, y, w, h) as xyxy,
    sees no overlap and keeps both. conf = mean gray in the rect / 255."""
    from mmwris.evaluation import tris_generate_boxes
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[2:12, 2:12] = 1                            # rect (2, 2, 10, 10)
    mask[8:17, 13:16] = mask[14:17, 8:16] = 1       # L, rect (8, 8, 8, 9)
    boxes = tris_generate_boxes(mask)
    np.testing.assert_array_equal(boxes[:, :4], [[2, 2, 12, 12],
                                                 [8, 8, 16, 17]])
    # the L (42 px) + the square's corner (16 px) in the 8 x 9 rect
    np.testing.assert_allclose(boxes[:, 4], [1.0, 58 / 72])


@pytest.mark.parametrize('value', [0, 1])
def test_released_boxes_of_a_constant_mask_are_the_default(value):
    from mmwris.evaluation import tris_generate_boxes
    boxes = tris_generate_boxes(np.full((4, 5), value))
    np.testing.assert_array_equal(boxes, [[0, 0, 1, 1, 0]] * 2)


def test_released_box_hits_any_box_and_last_box_at_the_peak():
    from mmwris.evaluation import tris_box_hits
    boxes = [[0, 0, 4, 4, 0.9], [10, 10, 20, 20, 0.8], [0, 0, 2, 2, 0.7]]
    acc, hit_box, iou = tris_box_hits(boxes, (1, 1), [10, 10, 20, 21])
    assert acc                          # the second box, not at the peak
    assert hit_box.tolist() == boxes[2]  # the last box containing (1, 1)
    assert iou == 0.0
    acc, hit_box, _ = tris_box_hits(boxes, (30, 30), [0, 0, 1, 1])
    assert not acc and hit_box.tolist() == boxes[0]  # none: the first


def test_released_point_rule_and_int_gt_box():
    from mmwris.evaluation import released_gt_box
    response = zeros()
    response[2, 3] = 1.0
    # index (3, 2) is inside [1, 1, 3, 2] inclusive; its centre is not
    assert point_in_box(response, [1, 1, 3, 2], rule='index_inclusive')
    assert not point_in_box(response, [1, 1, 3, 2])
    with pytest.raises(ValueError):
        point_in_box(response, [1, 1, 3, 2], rule='centre')
    # COCO [x, y, w, h] = [10.7, 3.2, 5.0, 7.9] -> int -> [10, 3, 15, 10]
    np.testing.assert_array_equal(
        released_gt_box([10.7, 3.2, 10.7 + 5.0, 3.2 + 7.9]), [10, 3, 15, 10])
    # w recovered from a rounded float sum (0.1 + 0.2 + 3 - 0.3...)
    np.testing.assert_array_equal(
        released_gt_box([0.1 + 0.2, 0, 0.1 + 0.2 + 3, 4]), [0, 0, 3, 4])


def test_protocol_presets_and_overrides():
    ours, tris = RISMetric(), RISMetric(protocol='tris')
    assert (ours.box_mode, ours.point_rule, ours.gt_box) == (
        'largest_cc', 'pixel_center', 'float')
    assert (tris.box_mode, tris.point_rule, tris.gt_box) == (
        'any_box', 'index_inclusive', 'released')
    mixed = RISMetric(protocol='tris', box_mode='largest_cc', gt_box='float')
    assert (mixed.box_mode, mixed.point_rule, mixed.gt_box) == (
        'largest_cc', 'index_inclusive', 'float')
    for kwargs in (dict(protocol='paper'), dict(gt_box='int'),
                   dict(point_rule='centre')):
        with pytest.raises(ValueError):
            RISMetric(**kwargs)


def test_tris_protocol_reports_box_iou_unrounded():
    """two_samples: A's released box (0, 0, 1, 2) has IoU 2 / 4 with the
    GT box (no hit); B's full mask is constant, so it gets the default box
    (0, 0, 1, 1): IoU 1 / 20, no hit either (ours: a hit)."""
    sample_a, sample_b = two_samples()
    metrics = evaluate([sample_a, sample_b], protocol='tris', digits=None)
    assert metrics['AccBox'] == 0.0
    assert metrics['BoxIoU'] == pytest.approx(100 * (2 / 4 + 1 / 20) / 2)
    assert metrics['mIoU'] == 75.0
    assert 'BoxIoU' not in evaluate([sample_a, sample_b])
