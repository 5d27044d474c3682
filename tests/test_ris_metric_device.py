"""``RISMetric``'s tensor (device) path gives exactly the numpy path's
results.

Each case is fed twice: as torch tensors (scored on their device) and as
the same maps converted to numpy (scored with numpy / cv2 on the host);
``metric.results``, ``compute_metrics`` and ``output_file`` must agree
exactly.
"""
import numpy as np
import pytest
import torch

from mmwris.evaluation import RISMetric
from mmwris.evaluation.functional import to_numpy

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
OPTIONS = [
    dict(protocol='ours'),
    dict(protocol='tris'),
    dict(protocol='pcnet'),
    dict(protocol='magnet'),
    dict(box_mode='all'),
    dict(box_mode='all', point_rule='index_inclusive', gt_box='released'),
    dict(box_mode='any_box'),
    dict(protocol='tris', box_mode='largest_cc', gt_box='float',
         point_rule='pixel_center'),
    dict(mask_threshold=0.5),
    dict(protocol='tris', mask_threshold=0.5, box_mode='all'),
    dict(protocol='ours', eval_size=(6, 5)),
]
OPTION_IDS = [
    '-'.join(f'{k}={v}' for k, v in options.items()) for options in OPTIONS
]


def tensor_sample(response, pred, gt, box, proposal=None, device='cpu',
                  response_dtype=torch.float32, **meta):
    """A ``SegDataSample.to_dict()``-style sample of tensors [1, H, W]."""

    def field(x, dtype):
        return {'data': torch.as_tensor(x, dtype=dtype, device=device)[None]}

    sample = dict(seg_logits=field(response, response_dtype),
                  pred_sem_seg=field(pred, torch.int64),
                  gt_sem_seg=field(gt, torch.uint8),
                  gt_bbox=np.asarray(box, dtype=np.float32), **meta)
    if proposal is not None:
        sample['pred_proposal_seg'] = field(proposal, torch.bool)
    return sample


def numpy_sample(sample):
    """The same sample with every map as a numpy array (``to_numpy``)."""
    return {
        k: {'data': to_numpy(v['data'])} if isinstance(v, dict) else v
        for k, v in sample.items()
    }


def assert_same(samples, tmp_path=None, **options):
    """Both paths store equal results and report equal metrics."""
    runs = []
    for name, batch in (('tensor', samples),
                        ('numpy', [numpy_sample(s) for s in samples])):
        output_file = None if tmp_path is None else str(tmp_path / name)
        metric = RISMetric(output_file=output_file, **options)
        metric.process({}, batch)
        results = [dict(r) for r in metric.results]
        runs.append((results, metric.compute_metrics(metric.results),
                     output_file and open(output_file).read()))
    (tensor_results, tensor_metrics, tensor_dump), \
        (numpy_results, numpy_metrics, numpy_dump) = runs
    assert tensor_results == numpy_results
    for tensor_result, numpy_result in zip(tensor_results, numpy_results):
        for key, value in tensor_result.items():  # same Python types
            assert type(value) is type(numpy_result[key]), key
    assert tensor_metrics == numpy_metrics
    assert tensor_dump == numpy_dump
    return tensor_results


def random_samples(rng, device, sizes=((7, 9), (12, 5), (1, 6), (16, 16)),
                   proposals=False):
    """Samples of several sizes: responses with many ties, blobby and
    noisy masks, boxes around the GT (on pixel edges or fractional)."""
    samples = []
    for i, (h, w) in enumerate(sizes):
        response = rng.integers(0, 4, (h, w)).astype(np.float32) / 4
        gt = np.zeros((h, w), np.uint8)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        gt[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = 1
        pred = (rng.random((h, w)) < rng.choice([0.0, 0.2, 0.6])).astype(
            np.int64)
        ys, xs = np.nonzero(gt)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        if i % 2:
            box = list(np.array(box) + rng.uniform(-1, 1, 4))
        proposal = (rng.random((h, w)) < 0.4) if proposals else None
        samples.append(tensor_sample(
            response, pred, gt, box, proposal, device=device, split='val',
            ref_id=i // 2, sent_id=i, image_id=100 + i))
    return samples


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('options', OPTIONS, ids=OPTION_IDS)
def test_random_batches_match_numpy(options, device, tmp_path):
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert_same(random_samples(rng, device), tmp_path, **options)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('options', OPTIONS, ids=OPTION_IDS)
def test_proposals_match_numpy(options, device):
    rng = np.random.default_rng(1)
    for _ in range(3):
        results = assert_same(
            random_samples(rng, device, proposals=True), **options)
        assert all('segmentor' in r for r in results)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('options', OPTIONS, ids=OPTION_IDS)
def test_hand_made_cases_match_numpy(options, device):
    h, w = 5, 6
    gt = np.zeros((h, w), np.uint8)
    gt[1:4, 2:5] = 1
    box = [2, 1, 5, 4]
    tie = np.zeros((h, w), np.float32)
    tie[0, 5] = tie[2, 3] = tie[4, 0] = 1.0  # first max in row-major: (0, 5)
    pred = gt.astype(np.int64)
    empty = np.zeros((h, w), np.int64)
    zeros = np.zeros((h, w))
    samples = [
        (tie, pred, gt),
        (zeros, pred, gt),  # constant map: peak (0, 0)
        (tie, empty, gt),  # empty prediction
        (tie, pred, zeros),  # empty GT
        (zeros, empty, zeros),  # empty union
        (tie, np.ones((h, w)), gt),  # full prediction
    ]
    samples = [tensor_sample(*maps, box, device=device) for maps in samples]
    results = assert_same(samples, **options)
    if options.get('eval_size') is None and 'protocol' not in options:
        assert [r['point_hit'] for r in results] == [False] * 6


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('point_rule', ['pixel_center', 'index_inclusive'])
@pytest.mark.parametrize('gt_box', ['float', 'released'])
def test_peak_on_box_border_matches_numpy(point_rule, gt_box, device):
    h, w, y, x = 8, 9, 3, 4
    response = np.zeros((h, w), np.float32)
    response[y, x] = 1.0
    gt = np.zeros((h, w), np.uint8)
    gt[y, x] = 1
    borders = []
    for d in (-0.5, -0.01, 0.0, 0.01, 0.5, 0.51, 1.0):
        borders += [[x + d, 0, w, h], [0, y + d, w, h],
                    [0, 0, x + d, h], [0, 0, w, y + d]]
    samples = [
        tensor_sample(response, gt, gt, box, device=device)
        for box in borders
    ]
    results = assert_same(samples, point_rule=point_rule, gt_box=gt_box,
                          box_mode='all')
    hits = {r['pointit_hit'] for r in results}
    assert hits == {True, False}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16,
                                   torch.float64])
def test_response_dtypes_match_numpy(dtype, device):
    rng = np.random.default_rng(2)
    samples = random_samples(rng, device)
    for sample in samples:
        data = sample['seg_logits']['data']
        sample['seg_logits']['data'] = (
            data + torch.rand_like(data) * 1e-3).to(dtype)
    for options in (dict(box_mode='all'), dict(mask_threshold=0.5)):
        assert_same(samples, **options)


def test_threshold_equal_to_response_values_matches_numpy():
    response = np.array([[0.1, 0.3, 0.7], [0.3, 0.1, 0.7]], np.float32)
    gt = np.array([[0, 1, 1], [0, 0, 1]], np.uint8)
    samples = [tensor_sample(response, gt, gt, [1, 0, 3, 2])]
    for threshold in (0.1, 0.3, 0.7):
        assert_same(samples, mask_threshold=threshold, box_mode='all')


def test_nan_response_matches_numpy():
    response = np.zeros((4, 4), np.float32)
    response[1, 2] = response[3, 0] = np.nan
    gt = np.eye(4, dtype=np.uint8)
    results = assert_same([tensor_sample(response, gt, gt, [0, 0, 4, 4])],
                          box_mode='all')
    assert results[0]['pointit_hit'] is True


def test_tensor_samples_take_the_device_path():
    sample = tensor_sample(np.zeros((3, 4)), np.zeros((3, 4)),
                           np.zeros((3, 4)), [0, 0, 1, 1])
    assert RISMetric()._device_of(sample) == torch.device('cpu')
    assert RISMetric()._device_of(numpy_sample(sample)) is None
    assert RISMetric(protocol='magnet')._device_of(sample) is None
    mixed = dict(sample, gt_sem_seg=numpy_sample(sample)['gt_sem_seg'])
    assert RISMetric()._device_of(mixed) is None


def test_mixed_batch_keeps_sample_order():
    rng = np.random.default_rng(3)
    samples = random_samples(rng, 'cpu')
    mixed = [s if i % 2 else numpy_sample(s) for i, s in enumerate(samples)]
    metric, reference = RISMetric(box_mode='all'), RISMetric(box_mode='all')
    metric.process({}, mixed)
    reference.process({}, [numpy_sample(s) for s in samples])
    assert metric.results == reference.results


@pytest.mark.parametrize('key', ['seg_logits', 'pred_sem_seg',
                                 'pred_proposal_seg'])
def test_shape_mismatch_raises_on_both_paths(key):
    gt = np.zeros((4, 5), np.uint8)
    sample = tensor_sample(gt, gt, gt, [0, 0, 1, 1], proposal=gt)
    sample[key] = {'data': torch.zeros(1, 4, 6)}
    messages = []
    for batch in ([sample], [numpy_sample(sample)]):
        with pytest.raises(ValueError, match='differ in shape') as error:
            RISMetric().process({}, batch)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
