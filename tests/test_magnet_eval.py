"""RISMetric(protocol='magnet'): the released MagNet evaluation (test.py
``evaluate``): masks and GT at 480x480, IoU 0 for an empty union, mIoU,
oIoU, Prec@X; hand-computed and against ``tiny_eval.pt``."""
import numpy as np
import pytest
import torch

from official_fixtures import fixtures_root, load

from mmwris.evaluation import RISMetric


def sample(pred, gt, **meta):
    pred = torch.as_tensor(np.asarray(pred), dtype=torch.uint8)[None]
    gt = torch.as_tensor(np.asarray(gt), dtype=torch.uint8)[None]
    return dict(seg_logits=dict(data=pred.float()),
                pred_sem_seg=dict(data=pred), gt_sem_seg=dict(data=gt),
                gt_bbox=np.array([0., 0., 1., 1.]), **meta)


def evaluate(metric, samples):
    metric.process(None, samples)
    return metric.compute_metrics(metric.results)


def test_magnet_preset_hand_computed():
    """2x2 images nearest-resized to 480x480 (each pixel -> 240x240):
    sample 1: pred {(0,0)}, GT {(0,0),(0,1)} -> I = 57600, U = 115200,
    IoU 0.5; sample 2: both empty -> U = 0, IoU 0 (released; ours: 1).
    mIoU 25, oIoU 57600 / 115200 = 50, Prec@0.5 = 50, Prec@0.6 = 0."""
    samples = [sample([[1, 0], [0, 0]], [[1, 1], [0, 0]]),
               sample([[0, 0], [0, 0]], [[0, 0], [0, 0]])]
    metric = RISMetric(protocol='magnet', digits=None)
    assert metric.eval_size == (480, 480)
    metrics = evaluate(metric, samples)
    inters = [r['intersection'] for r in metric.results]
    unions = [r['union'] for r in metric.results]
    assert inters == [57600, 0] and unions == [115200, 0]
    assert metrics['mIoU'] == pytest.approx(25.0)
    assert metrics['oIoU'] == pytest.approx(50.0)
    assert metrics['Prec@0.5'] == pytest.approx(50.0)
    assert metrics['Prec@0.6'] == pytest.approx(0.0)
    ours = evaluate(RISMetric(protocol='ours', digits=None), samples)
    assert ours['mIoU'] == pytest.approx(75.0)


def test_released_evaluate_fixture():
    """``tiny_eval.pt``: the released loop's I, U, IoU, mIoU, oIoU and
    Prec@X from its binary predictions and targets (already at the
    evaluation size)."""
    if not (fixtures_root() / 'magnet').is_dir():
        pytest.skip('no MagNet official fixtures')
    data = load('tiny_eval.pt', 'magnet')
    targets = data['targets'].numpy()
    size = targets.shape[-1]
    packed = data['pred_binary_packed'].numpy()
    samples = []
    for ref in range(packed.shape[0]):
        for j in range(packed.shape[1]):
            pred = np.unpackbits(packed[ref, j])[:size * size].reshape(
                size, size)
            samples.append(sample(pred, targets[ref], ref_id=ref,
                                  sent_id=2 * ref + j))
    metric = RISMetric(protocol='magnet', eval_size=targets.shape[-2:],
                       digits=None,
                       prec_thresholds=data['prec_thresholds'])
    metrics = evaluate(metric, samples)
    assert [r['intersection'] for r in metric.results] == \
        data['I'].tolist()
    assert [r['union'] for r in metric.results] == data['U'].tolist()
    np.testing.assert_allclose([r['iou'] for r in metric.results],
                               data['iou'].numpy(), rtol=0, atol=1e-12)
    assert metrics['mIoU'] == pytest.approx(100 * data['mIoU'], abs=1e-10)
    assert metrics['oIoU'] == pytest.approx(100 * data['oIoU'], abs=1e-10)
    for t, p in zip(data['prec_thresholds'], data['prec']):
        assert metrics[f'Prec@{t:g}'] == pytest.approx(100 * p, abs=1e-10)


def test_gt_resized_like_the_released_transform():
    """The preset's GT resize = PIL nearest (``targets_resized`` of
    ``tiny_inputs.pt``, exact); cv2's INTER_NEAREST would differ."""
    if not (fixtures_root() / 'magnet').is_dir():
        pytest.skip('no MagNet official fixtures')
    data = load('tiny_inputs.pt', 'magnet')
    want = data['targets_resized'].numpy() > 0
    metric = RISMetric(protocol='magnet', eval_size=want.shape[-2:])
    for raw, target in zip(data['raw_targets_uint8'].numpy(), want):
        np.testing.assert_array_equal(metric._resize_mask(raw > 0), target)


def test_predictions_at_eval_size():
    """A 480x480 prediction (MagNetMaskDecoder(output='input')) is scored
    against the GT resized to 480x480; other protocols refuse it."""
    gt = np.zeros((2, 4), np.uint8)
    gt[:, :2] = 1  # left half
    pred = np.zeros((480, 480), np.uint8)
    pred[:, :240] = 1
    metric = RISMetric(protocol='magnet', digits=None)
    assert evaluate(metric, [sample(pred, gt)])['mIoU'] == pytest.approx(100)
    with pytest.raises(ValueError):
        RISMetric(protocol='ours').process(None, [sample(pred, gt)])
