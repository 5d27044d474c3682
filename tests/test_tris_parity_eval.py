"""Evaluation parity with the released TRIS code (``eval_metrics.pt``).

The released ``validate()`` was run on synthetic response maps; here the
same maps go through ``TRISOfficialMaskDecoder`` and
``RISMetric(protocol='tris')``. Integer outputs must match exactly, floats
within the fixture README's tolerance (atol 1e-6). Every size comes from the
file.
"""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmwris.evaluation import (RISMetric, mask_intersection_union,
                               response_peak, tris_box_hits,
                               tris_generate_boxes)
from mmwris.models.mask_decoders import TRISOfficialMaskDecoder
from official_fixtures import load, require

require('tris')
DATA = load('eval_metrics.pt')
CASES = list(DATA['meta/case_names'])
ATOL = 1e-6
# The released means are float32 averages (AverageMeter on float32
# tensors); ours are float64: allow one float32 ulp of a percentage.
MEAN_ATOL = 2e-6


def gt_mask(i: int) -> np.ndarray:
    height, width = (int(s) for s in DATA['inputs/orig_sizes'][i])
    bits = DATA[f'inputs/gt_mask_packbits_{i}'].numpy()
    return np.unpackbits(bits)[:height * width].reshape(height, width)


def decoded_sample(i: int) -> SegDataSample:
    """Case ``i`` through the released mask step, with its GT."""
    maps = DATA['inputs/maps']
    assert maps.shape[-1] == maps.shape[-2] == DATA['meta/grid']
    size = (DATA['meta/input_size'], ) * 2
    ori_shape = tuple(int(s) for s in DATA['inputs/orig_sizes'][i])
    sample = SegDataSample(metainfo=dict(
        img_shape=size, batch_input_shape=size, ori_shape=ori_shape,
        gt_bbox=DATA['inputs/gt_boxes_xyxy'][i].tolist()))
    TRISOfficialMaskDecoder().decode_batch(maps[i:i + 1], [sample])
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt_mask(i))[None])
    return sample


@pytest.fixture(scope='module')
def samples():
    return [decoded_sample(i) for i in range(len(CASES))]


@pytest.fixture(scope='module')
def metric(samples):
    metric = RISMetric(protocol='tris', digits=None)
    metric.process({}, samples)
    return metric


@pytest.mark.parametrize('i', range(len(CASES)), ids=CASES)
def test_mask_iou_and_peak(samples, i):
    sample = samples[i]
    t_cam = sample.seg_logits.data[0]
    mask = sample.pred_sem_seg.data[0].numpy()
    assert mask.shape == gt_mask(i).shape
    assert int(mask.sum()) == int(DATA['out/mask_area'][i])
    inter, union = mask_intersection_union(mask, gt_mask(i))
    assert (inter, union) == (int(DATA['out/I'][i]), int(DATA['out/U'][i]))
    assert inter / union == pytest.approx(float(DATA['out/IoU'][i]),
                                          abs=ATOL)
    assert float(t_cam.max()) == pytest.approx(
        float(DATA['out/t_cam_max'][i]), abs=ATOL)
    assert response_peak(t_cam) == tuple(DATA['out/max_loc_yx'][i].tolist())


@pytest.mark.parametrize('i', range(len(CASES)), ids=CASES)
def test_point_and_box_hits(samples, metric, i):
    result = metric.results[i]
    assert result['intersection'] == int(DATA['out/I'][i])
    assert result['union'] == int(DATA['out/U'][i])
    assert result['pointit_hit'] == bool(DATA['out/point_it_hit'][i])
    assert result['point_hit'] == bool(DATA['out/point_m_hit'][i])
    assert result['box_hit'] == bool(DATA['out/acc_box'][i])
    assert result['box_iou'] == pytest.approx(
        float(DATA['out/box_iou_of_hit_box'][i]), abs=ATOL)


@pytest.mark.parametrize('i', range(len(CASES)), ids=CASES)
def test_generated_boxes(samples, i):
    sample = samples[i]
    boxes = tris_generate_boxes(sample.pred_sem_seg.data[0])
    expected = np.array(DATA['out/boxes_generated'][i], dtype=np.float64)
    assert boxes.shape == expected.shape
    np.testing.assert_array_equal(boxes[:, :4], expected[:, :4])
    np.testing.assert_allclose(boxes[:, 4], expected[:, 4], rtol=0,
                               atol=1e-9)
    acc, hit_box, iou = tris_box_hits(
        boxes, response_peak(sample.seg_logits.data[0]), sample.gt_bbox)
    np.testing.assert_array_equal(hit_box, DATA['out/box_hit'][i])
    assert acc == bool(DATA['out/acc_box'][i])


def test_averaged_accuracies(metric):
    results = metric.compute_metrics(metric.results)
    expected = dict(mIoU='acc/mIoU_percent', oIoU='acc/oIoU_percent',
                    PointIt='acc/point_it_percent',
                    PointM='acc/point_m_percent',
                    AccBox='acc/acc_box_percent',
                    BoxIoU='acc/box_miou_percent')
    for name, key in expected.items():
        assert results[name] == pytest.approx(float(DATA[key]),
                                              abs=MEAN_ATOL), name
    assert results['num_samples'] == len(CASES)


def float32_percent(values) -> float:
    """``100 * mean`` accumulated in float32, as the released meters do."""
    total = np.float32(0)
    for value in values:
        total = np.float32(total + np.float32(value))
    return float(np.float32(100) * np.float32(total / np.float32(len(values))))


def test_per_sample_values_average_to_the_released_float32_means(metric):
    """Our per-sample values averaged in float32 give the printed means
    within the README's 1e-6."""
    results = metric.results
    for key, name in (('iou', 'acc/mIoU_percent'),
                      ('box_iou', 'acc/box_miou_percent'),
                      ('box_hit', 'acc/acc_box_percent')):
        assert float32_percent([r[key] for r in results]) == pytest.approx(
            float(DATA[name]), abs=ATOL), key
