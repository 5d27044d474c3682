"""Tests of the pseudo-label refiners (TRIS step 2).

The synthetic scenes are 80 x 100 RGB images with one object of a distinct
colour (plus pixel noise) and a blurry Gaussian response that covers most of
the object but is offset from it and leaks onto the background. The refined
labels must match the true object mask better than thresholding the response
at 0.5. Run with ``-s`` to see the measured IoUs.
"""
import time

import numpy as np
import pytest
import torch

import mmwris.pseudo_labels  # noqa: F401  (registers the refiners)
from mmwris.pseudo_labels import (IGNORE_INDEX, AffinityRandomWalkRefiner,
                                  DenseCRFRefiner, ThresholdRefiner,
                                  build_refiner)
from mmwris.pseudo_labels.refiners import (_bilateral_kernel, _disk_taps,
                                           _fit_logistic, _PositionKernel,
                                           random_walk)
from mmwris.registry import TASK_UTILS

H, W = 80, 100


@pytest.fixture(autouse=True)
def _one_thread():
    """The refiners run many small tensor ops; on a shared 2-core machine
    intra-op threads only add synchronisation stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian(centre, sigma, h=H, w=W):
    yy, xx = np.mgrid[:h, :w]
    dist2 = (yy - centre[0])**2 + (xx - centre[1])**2
    return np.exp(-dist2 / (2.0 * sigma**2)).astype(np.float32)


def noisy(image, mask, fg_rgb, seed, noise=8.0):
    image = image.astype(np.float32)
    image[mask] = fg_rgb
    image += np.random.default_rng(seed).normal(0.0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def square_scene(centre=(44, 52), sigma=16.0):
    """Red square on a blue background."""
    mask = np.zeros((H, W), bool)
    mask[25:55, 30:62] = True
    background = np.empty((H, W, 3), np.float32)
    background[:] = (60, 110, 170)
    return noisy(background, mask, (200, 60, 40), 0), gaussian(
        centre, sigma), mask


def ellipse_scene():
    """Green ellipse on a grey background with a colour gradient."""
    yy, xx = np.mgrid[:H, :W]
    mask = ((yy - 36) / 18.0)**2 + ((xx - 50) / 24.0)**2 <= 1
    background = np.empty((H, W, 3), np.float32)
    background[:] = (120, 120, 110)
    background[..., 1] += 40.0 * xx / W
    return noisy(background, mask, (40, 170, 60), 1,
                 noise=10.0), gaussian((30, 42), 14.0), mask


SCENES = {'square': square_scene, 'ellipse': ellipse_scene}


def iou(labels, mask):
    fg = labels == 1
    return (fg & mask).sum() / (fg | mask).sum()


def baseline_iou(response, mask):
    return iou((response > 0.5).astype(np.uint8), mask)


# ThresholdRefiner


def test_threshold_exact_values():
    response = np.array([[0.0, 0.05, 0.1, 0.2], [0.3, 0.31, 1.0, 0.0999]],
                        dtype=np.float32)
    labels = ThresholdRefiner(fg_thr=0.3, bg_thr=0.1)(response)
    # strict comparisons: exactly 0.1 and exactly 0.3 are ignored
    expected = np.array([[0, 0, 255, 255], [255, 1, 1, 0]], dtype=np.uint8)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)

    same = ThresholdRefiner(fg_thr=0.3, bg_thr=0.3)(response)
    np.testing.assert_array_equal(
        same, np.array([[0, 0, 0, 0], [255, 1, 1, 0]], dtype=np.uint8))


def test_threshold_ignores_image_and_clips():
    response = np.array([[-1.0, 2.0]], dtype=np.float64)
    image = np.zeros((1, 2, 3), np.uint8)
    labels = ThresholdRefiner()(response, image)
    np.testing.assert_array_equal(labels, [[0, 1]])


@pytest.mark.parametrize('fg_thr, bg_thr', [(0.1, 0.3), (1.5, 0.1),
                                            (0.3, -0.1), (float('nan'), 0.1)])
def test_threshold_validation(fg_thr, bg_thr):
    with pytest.raises(ValueError):
        ThresholdRefiner(fg_thr=fg_thr, bg_thr=bg_thr)


def test_input_validation():
    response = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError):
        ThresholdRefiner()(response[None])
    with pytest.raises(ValueError):
        DenseCRFRefiner()(response, np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError):
        AffinityRandomWalkRefiner()(response, np.zeros((4, 5), np.uint8))


def test_build_from_registry():
    refiner = build_refiner(dict(type='ThresholdRefiner', fg_thr=0.4))
    assert isinstance(refiner, ThresholdRefiner) and refiner.fg_thr == 0.4
    crf = TASK_UTILS.build(dict(type='DenseCRFRefiner', iterations=2))
    assert isinstance(crf, DenseCRFRefiner) and crf.iterations == 2
    walk = TASK_UTILS.build(dict(type='AffinityRandomWalkRefiner', beta=4))
    assert isinstance(walk, AffinityRandomWalkRefiner) and walk.beta == 4


# DenseCRFRefiner


def test_bilateral_kernel_matches_dense_reference():
    """The chunked, in-place kernel equals the formula computed densely."""
    feats = torch.randn(13, 5, generator=torch.Generator().manual_seed(0))
    kernel = _bilateral_kernel(feats, chunk=4)
    k = torch.exp(-0.5 * ((feats[:, None] - feats[None])**2).sum(-1))
    d = k.sum(1)
    expected = k / torch.sqrt(d[:, None] * d[None])
    expected.fill_diagonal_(0)
    torch.testing.assert_close(kernel, expected, rtol=1e-5, atol=1e-6)


def test_separable_position_kernel_matches_dense_reference():
    ys, xs = torch.arange(4.0) * 2.5, torch.arange(6.0) * 1.5
    position = _PositionKernel(ys, xs, std=3.0)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), -1)
    feats = grid.reshape(-1, 2) / 3.0
    k = torch.exp(-0.5 * ((feats[:, None] - feats[None])**2).sum(-1))
    d = k.sum(1)
    dense = k / torch.sqrt(d[:, None] * d[None])
    dense.fill_diagonal_(0)
    q = torch.rand(2, 4, 6, generator=torch.Generator().manual_seed(0))
    expected = (dense @ q.reshape(2, -1).t()).t().reshape(2, 4, 6)
    torch.testing.assert_close(position(q), expected)


def test_crf_mean_field_matches_naive_loop():
    """Marginals on a small grid (no resizing) equal a per-pixel loop."""
    rng = np.random.default_rng(0)
    h, w = 5, 6
    response = rng.uniform(0, 1, (h, w)).astype(np.float32)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    crf = DenseCRFRefiner(iterations=3, chunk=7)
    q = crf.marginals(response, image).reshape(2, -1).t().double()

    pos = np.stack(np.mgrid[:h, :w], -1).reshape(-1, 2) + 0.5
    rgb = image.reshape(-1, 3).astype(np.float64)
    n = h * w
    k_pos = np.array([[
        np.exp(-((pos[i] - pos[j])**2).sum() / (2 * crf.pos_xy_std**2))
        for j in range(n)
    ] for i in range(n)])
    k_bi = np.array([[
        np.exp(-((pos[i] - pos[j])**2).sum() / (2 * crf.bi_xy_std**2) -
               ((rgb[i] - rgb[j])**2).sum() / (2 * crf.bi_rgb_std**2))
        for j in range(n)
    ] for i in range(n)])
    kernel = np.zeros((n, n))
    for weight, k in ((crf.pos_w, k_pos), (crf.bi_w, k_bi)):
        d = k.sum(1)
        kernel += weight * k / np.sqrt(np.outer(d, d))
    p = np.clip(response.reshape(-1).astype(np.float64), crf.eps,
                1 - crf.eps)
    log_p = np.log(np.stack([1 - p, p], 1))
    ref = np.exp(log_p)
    for _ in range(crf.iterations):
        new = np.empty_like(ref)
        for i in range(n):
            message = sum(kernel[i, j] * ref[j] for j in range(n) if j != i)
            e = np.exp(log_p[i] + message)
            new[i] = e / e.sum()
        ref = new
    np.testing.assert_allclose(q.numpy(), ref, atol=1e-4)


@pytest.mark.parametrize('scene', sorted(SCENES))
def test_crf_improves_iou(scene):
    image, response, mask = SCENES[scene]()
    crf = DenseCRFRefiner()
    labels = crf(response, image)
    assert labels.shape == (H, W) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}
    base, refined = baseline_iou(response, mask), iou(labels, mask)
    print(f'\n[{scene}] IoU threshold@0.5 {base:.3f} -> dense CRF '
          f'{refined:.3f}')
    assert refined > base + 0.25
    np.testing.assert_array_equal(crf(response, image), labels)


def test_crf_gamma_helps_under_covering_response():
    """With less than half of the object above 0.5 the default unary
    shrinks the mask; gamma = log 0.5 / log 0.3 recovers it."""
    image, response, mask = square_scene(centre=(46, 54), sigma=12.0)
    gamma = np.log(0.5) / np.log(0.3)
    base = baseline_iou(response, mask)
    plain = iou(DenseCRFRefiner()(response, image), mask)
    calibrated = iou(DenseCRFRefiner(gamma=gamma)(response, image), mask)
    print(f'\n[under-covering square] IoU threshold@0.5 {base:.3f}, '
          f'dense CRF {plain:.3f}, dense CRF gamma={gamma:.2f} '
          f'{calibrated:.3f}')
    assert calibrated > base + 0.25


def test_crf_ignore_below():
    image, response, _ = square_scene()
    crf = DenseCRFRefiner(iterations=0, ignore_below=0.9)
    labels = crf(response, image)
    assert set(np.unique(labels)) == {0, 1, IGNORE_INDEX}
    confidence = crf.marginals(response, image).max(0).values.numpy()
    np.testing.assert_array_equal(labels == IGNORE_INDEX, confidence < 0.9)
    with pytest.raises(ValueError):
        DenseCRFRefiner(ignore_below=0.3)


# AffinityRandomWalkRefiner


def test_random_walk_matches_dense_transition():
    """The sparse walk equals v <- T v with the dense T it encodes."""
    h, w = 6, 7
    taps = _disk_taps(2)
    trans = torch.rand(len(taps), h, w, generator=torch.Generator()
                       .manual_seed(0))
    dense = torch.zeros(h * w, h * w)
    for k, (dy, dx) in enumerate(taps.tolist()):
        for i in range(h):
            for j in range(w):
                if 0 <= i + dy < h and 0 <= j + dx < w:
                    dense[i * w + j, (i + dy) * w + j + dx] = trans[k, i, j]
    v = torch.rand(h, w, generator=torch.Generator().manual_seed(1))
    expected = torch.linalg.matrix_power(dense, 3) @ v.reshape(-1)
    out = random_walk(v, trans, taps, iterations=3)
    torch.testing.assert_close(out.reshape(-1), expected)


def test_logistic_fit_recovers_parameters():
    """Newton fit of ``P(y = 1) = sigmoid(2 - 3 x_0 + 0 x_1)``; a positive
    slope is not allowed and ends at 0."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20000, 2, generator=gen, dtype=torch.float64)
    y = torch.bernoulli(torch.sigmoid(2 - 3 * x[:, 0] + 0.0 * x[:, 1]),
                        generator=gen)
    weight = torch.full((len(x), ), 1.0 / len(x), dtype=torch.float64)
    theta = _fit_logistic(x, y, weight, l2=0.0, steps=20)
    torch.testing.assert_close(theta, torch.tensor([2.0, -3.0, 0.0]).double(),
                               atol=0.15, rtol=0)
    y = torch.bernoulli(torch.sigmoid(-1 + 2 * x[:, 0]), generator=gen)
    theta = _fit_logistic(x, y, weight, l2=0.0, steps=20)
    assert theta[1] == 0 and theta[2] <= 0


@pytest.mark.parametrize('scene', sorted(SCENES))
def test_random_walk_improves_iou(scene):
    image, response, mask = SCENES[scene]()
    refiner = AffinityRandomWalkRefiner()
    labels = refiner(response, image)
    assert labels.shape == (H, W) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}
    base, refined = baseline_iou(response, mask), iou(labels, mask)
    print(f'\n[{scene}] IoU threshold@0.5 {base:.3f} -> affinity random '
          f'walk {refined:.3f}')
    assert refined > base + 0.3
    np.testing.assert_array_equal(refiner(response, image), labels)


def test_random_walk_extra_features():
    """On a flat grey image only the extra [C, h, w] maps (another size;
    noisy embeddings, one per region) can separate the object."""
    _, response, mask = square_scene()
    grey = np.full((H, W, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    fg, bg = rng.normal(size=(2, 16, 1, 1))
    small = mask[::2, ::2]
    features = np.where(small, fg, bg) + rng.normal(0, 0.5, (16, ) +
                                                     small.shape)
    refiner = AffinityRandomWalkRefiner()
    with_features = iou(refiner(response, grey, features=features), mask)
    without = iou(refiner(response, grey), mask)
    print(f'\n[grey square] IoU affinity random walk without features '
          f'{without:.3f}, with features {with_features:.3f}')
    assert with_features > max(without, baseline_iou(response, mask)) + 0.2
    with pytest.raises(ValueError):
        refiner(response, grey, features=features[0])


def test_random_walk_falls_back_without_bg_seeds():
    image, response, _ = square_scene()
    response = 0.2 + 0.8 * response  # nothing below bg_thr = 0.1
    refiner = AffinityRandomWalkRefiner()
    labels = refiner(response, image)
    assert refiner.propagate(response, image) is None
    np.testing.assert_array_equal(labels, ThresholdRefiner()(response))
    assert IGNORE_INDEX in labels


# all refiners


REFINERS = [ThresholdRefiner, DenseCRFRefiner, AffinityRandomWalkRefiner]


@pytest.mark.parametrize('refiner', REFINERS, ids=lambda r: r.__name__)
@pytest.mark.parametrize('value', [0.0, 0.2, 0.5, 1.0])
@pytest.mark.parametrize('size', [(H, W), (3, 4)])
def test_constant_response(refiner, value, size):
    image = np.full(size + (3, ), 90, np.uint8)
    labels = refiner()(np.full(size, value, np.float32), image)
    assert labels.shape == size and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, IGNORE_INDEX}
    assert len(np.unique(labels)) == 1


@pytest.mark.parametrize('refiner', REFINERS, ids=lambda r: r.__name__)
def test_timing(refiner):
    image, response, _ = square_scene()
    refiner = refiner()
    refiner(response, image)
    start = time.perf_counter()
    refiner(response, image)
    print(f'\n{type(refiner).__name__}: {time.perf_counter() - start:.3f} s '
          f'per {H}x{W} image')
