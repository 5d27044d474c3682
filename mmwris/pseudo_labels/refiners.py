"""Pseudo-label refiners: response map -> {0, 1, 255} label map (TRIS step 2).

Every refiner is called as ``refiner(response, image) -> labels`` with

* ``response``: ``np.ndarray`` [H, W], float in [0, 1] (clipped), the step-1
  response of one referring expression at the image's original size;
* ``image``: ``np.ndarray`` [H, W, 3] uint8 RGB;
* ``labels``: ``np.ndarray`` [H, W] uint8, 0 background, 1 foreground,
  255 ignore.

They are registered in ``TASK_UTILS``; build one with :func:`build_refiner`
or ``TASK_UTILS.build(dict(type='DenseCRFRefiner'))``.

The dense CRF and the random walk run on a reduced grid whose longer side is
``max_side``; their soft outputs are upsampled bilinearly to [H, W] before
the final hard decision.
"""
import math
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mmwris.registry import TASK_UTILS

__all__ = [
    'IGNORE_INDEX', 'ThresholdRefiner', 'DenseCRFRefiner',
    'AffinityRandomWalkRefiner', 'build_refiner'
]

IGNORE_INDEX = 255
# Kernel / affinity weights below exp(_LOG_FLOOR) are set to exactly zero:
# negligible, and it keeps float32 denormals (very slow on CPU) out.
_LOG_FLOOR = -30.0


def build_refiner(cfg):
    """Build a refiner from a config dict, e.g.
    ``dict(type='ThresholdRefiner', fg_thr=0.3, bg_thr=0.1)``."""
    return TASK_UTILS.build(cfg)


def _check_inputs(response, image=None) -> np.ndarray:
    """Validate shapes; return the response as float32 [H, W] in [0, 1]."""
    response = np.asarray(response, dtype=np.float32)
    if response.ndim != 2:
        raise ValueError(f'response must be [H, W], got {response.shape}')
    if image is not None:
        image = np.asarray(image)
        if image.shape != response.shape + (3, ):
            raise ValueError(f'image must be {response.shape + (3, )} '
                             f'(RGB), got {image.shape}')
    return np.clip(np.nan_to_num(response), 0.0, 1.0)


def _reduced_size(height: int, width: int, max_side: int) -> Tuple[int, int]:
    """(h, w) with max(h, w) <= max_side; the input size if already small."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(array: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Area-average ``array`` [H, W(, C)] to ``size`` = (h, w), float32."""
    array = array.astype(np.float32)
    if array.shape[:2] == tuple(size):
        return array
    return cv2.resize(array, size[::-1], interpolation=cv2.INTER_AREA)


def _upsample(maps: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of ``maps`` [C, h, w] to [C, H, W]."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(
        maps[None], size=size, mode='bilinear', align_corners=False)[0]


def _centres(n: int, full: int) -> torch.Tensor:
    """Centres of ``n`` reduced pixels along a side of ``full`` pixels, in
    full-resolution pixel units, [n]."""
    return (torch.arange(n, dtype=torch.float32) + 0.5) * (full / n)


def _gaussian(sq_dist: torch.Tensor) -> torch.Tensor:
    """``exp(-sq_dist / 2)`` in place, exactly 0 below ``exp(_LOG_FLOOR)``."""
    log_k = sq_dist.mul_(-0.5)
    return log_k.masked_fill_(log_k < _LOG_FLOOR, -math.inf).exp_()


@TASK_UTILS.register_module()
class ThresholdRefiner:
    """The TRIS seeds: ``1`` where ``response > fg_thr``, ``0`` where
    ``response < bg_thr``, ``255`` (ignore) elsewhere.

    Both comparisons are strict, so a pixel exactly at ``fg_thr`` or at
    ``bg_thr`` is ignored (with ``fg_thr == bg_thr`` exactly that level is
    ignored).

    Args:
        fg_thr (float): Foreground threshold. Defaults to 0.3.
        bg_thr (float): Background threshold. Defaults to 0.1.
    """

    def __init__(self, fg_thr: float = 0.3, bg_thr: float = 0.1):
        if not 0.0 <= bg_thr <= fg_thr <= 1.0:
            raise ValueError('need 0 <= bg_thr <= fg_thr <= 1, got '
                             f'bg_thr={bg_thr}, fg_thr={fg_thr}')
        self.fg_thr = float(fg_thr)
        self.bg_thr = float(bg_thr)

    def __call__(self,
                 response: np.ndarray,
                 image: Optional[np.ndarray] = None) -> np.ndarray:
        """response [H, W], image [H, W, 3] (unused) -> labels [H, W]."""
        response = _check_inputs(response, image)
        labels = np.full(response.shape, IGNORE_INDEX, dtype=np.uint8)
        labels[response > self.fg_thr] = 1
        labels[response < self.bg_thr] = 0
        return labels

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(fg_thr={self.fg_thr}, '
                f'bg_thr={self.bg_thr})')


def _bilateral_kernel(feats: torch.Tensor, chunk: int) -> torch.Tensor:
    """``D^-1/2 K D^-1/2`` with zero diagonal, [N, N], for ``K[i, j] =
    exp(-|f_i - f_j|^2 / 2)`` of std-scaled features ``feats`` [N, D] and
    ``D`` its row sums (self included).

    Built ``chunk`` rows at a time into one [N, N] buffer, then normalised
    in place (peak memory: the buffer plus [chunk, N] temporaries).
    """
    n = feats.shape[0]
    kernel = torch.empty(n, n)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        kernel[rows] = _gaussian(torch.cdist(feats[rows], feats).square_())
    inv_sqrt = kernel.sum(1).rsqrt()
    kernel.mul_(inv_sqrt[:, None]).mul_(inv_sqrt[None])
    return kernel.fill_diagonal_(0.0)


class _PositionKernel:
    """The normalised position kernel ``D^-1/2 K D^-1/2`` (zero diagonal)
    on an [h, w] grid, applied separably: ``K = K_y (x) K_x`` with 1-D
    Gaussians, so ``K Q = K_y Q K_x^T`` per label and ``D = d_y (x) d_x``.
    """

    def __init__(self, ys: torch.Tensor, xs: torch.Tensor, std: float):
        self.k_y = _gaussian(((ys[:, None] - ys[None]) / std).square_())
        self.k_x = _gaussian(((xs[:, None] - xs[None]) / std).square_())
        self.inv_sqrt = torch.outer(self.k_y.sum(1), self.k_x.sum(1)).rsqrt()

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """Message ``sum_{j != i} K~_ij Q_j`` for ``q`` [L, h, w]."""
        r = self.inv_sqrt
        full = r * (self.k_y @ (r * q) @ self.k_x.t())
        return full - r.square() * q  # k_ii = 1: remove the self term


@TASK_UTILS.register_module()
class DenseCRFRefiner:
    """Fully connected CRF (Krähenbühl & Koltun, 2011) over {bg, fg}.

    Energy: ``E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)``
    with unary ``psi_u(l) = -log P_i(l)``,
    ``P_i(fg) = clip(response_i ** gamma, eps, 1 - eps)``,
    Potts ``mu(l, l') = [l != l']`` and

    ``k = pos_w * k_pos + bi_w * k_bi``,
    ``k_pos = exp(-|p_i - p_j|^2 / (2 pos_xy_std^2))``,
    ``k_bi = exp(-|p_i - p_j|^2 / (2 bi_xy_std^2)
    - |I_i - I_j|^2 / (2 bi_rgb_std^2))``,

    each Gaussian symmetrically normalised (``D^-1/2 K D^-1/2`` with ``D``
    its row sums, as the reference implementation does by default); call
    the normalised sum ``k~``. Mean-field inference, from ``Q = P``,
    repeats ``iterations`` times::

        Q_i(l) ∝ exp(-psi_u(l) + sum_{j != i} k~(f_i, f_j) Q_j(l))

    (the Potts message ``-sum_{l' != l} Q_j(l')`` equals ``Q_j(l)`` up to a
    per-pixel constant that the normalisation removes).

    Exact dense inference runs on a reduced grid (longer side ``max_side``,
    N = h * w pixels): the bilateral kernel is an explicit [N, N] float32
    matrix (64 MB for 64 x 64), the position kernel is applied separably
    (rows then columns). The positions ``p`` are the reduced pixels'
    centres in full-resolution pixels, so the ``*_xy_std`` are in
    full-resolution pixels; ``I`` is the area-averaged RGB in [0, 255].
    ``Q`` is upsampled bilinearly to [H, W] and the label is ``argmax Q``
    (ties -> background).

    Args:
        iterations (int): Mean-field iterations. Defaults to 5.
        pos_xy_std (float): Position kernel std (pixels). Defaults to 3.
        pos_w (float): Position kernel weight. Defaults to 3.
        bi_xy_std (float): Bilateral kernel position std. Defaults to 20.
        bi_rgb_std (float): Bilateral kernel colour std. Defaults to 13.
        bi_w (float): Bilateral kernel weight. Defaults to 10.
        max_side (int): Longer side of the inference grid. Defaults to 64.
        gamma (float): Calibration exponent of the unary. ``gamma = log 0.5 /
            log 0.3 ~= 0.58`` moves the unary's neutral point (P = 0.5) to
            the paper's foreground threshold 0.3, which helps when less than
            half of the object responds above 0.5. Defaults to 1.
        eps (float): Clip of the foreground probability. Defaults to 1e-5.
        ignore_below (float, optional): Label pixels whose max marginal is
            below it 255. Defaults to None (no ignore).
        chunk (int): Rows of the bilateral kernel built at a time.
            Defaults to 1024.
    """

    def __init__(self,
                 iterations: int = 5,
                 pos_xy_std: float = 3.0,
                 pos_w: float = 3.0,
                 bi_xy_std: float = 20.0,
                 bi_rgb_std: float = 13.0,
                 bi_w: float = 10.0,
                 max_side: int = 64,
                 gamma: float = 1.0,
                 eps: float = 1e-5,
                 ignore_below: Optional[float] = None,
                 chunk: int = 1024):
        if iterations < 0 or max_side < 1 or chunk < 1:
            raise ValueError('iterations must be >= 0, max_side and chunk '
                             '>= 1')
        if min(pos_xy_std, bi_xy_std, bi_rgb_std) <= 0:
            raise ValueError('kernel stds must be positive')
        if gamma <= 0:
            raise ValueError(f'gamma must be positive, got {gamma}')
        if not 0.0 < eps < 0.5:
            raise ValueError(f'eps must be in (0, 0.5), got {eps}')
        if ignore_below is not None and not 0.5 <= ignore_below <= 1.0:
            raise ValueError('ignore_below must be in [0.5, 1] (a max '
                             f'marginal of two labels), got {ignore_below}')
        self.iterations = int(iterations)
        self.pos_xy_std = float(pos_xy_std)
        self.pos_w = float(pos_w)
        self.bi_xy_std = float(bi_xy_std)
        self.bi_rgb_std = float(bi_rgb_std)
        self.bi_w = float(bi_w)
        self.max_side = int(max_side)
        self.gamma = float(gamma)
        self.eps = float(eps)
        self.ignore_below = ignore_below
        self.chunk = int(chunk)

    def marginals(self, response: np.ndarray,
                  image: np.ndarray) -> torch.Tensor:
        """Mean-field marginals ``Q`` [2, H, W] (bg, fg) at full size."""
        response = _check_inputs(response, image)
        size = _reduced_size(*response.shape, self.max_side)
        prob = torch.from_numpy(_resize(response, size)).reshape(-1)
        return self._mean_field(prob.pow(self.gamma), image)

    def label_marginals(self, labels: np.ndarray, image: np.ndarray,
                        gt_prob: float = 0.7) -> torch.Tensor:
        """Marginals ``Q`` [2, H, W] from a hard {0, 1} label map.

        The unary of pydensecrf's ``unary_from_labels(labels, 2, gt_prob)``:
        ``P_i(l_i) = gt_prob``, ``P_i(other) = 1 - gt_prob`` (on the reduced
        grid a pixel mixing both labels gets the area-weighted mixture).
        The IRN / TRIS seeds refine their thresholded maps this way.
        """
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.isin(labels, (0, 1)).all():
            raise ValueError('labels must be an [H, W] map of 0 and 1, got '
                             f'shape {labels.shape}, values '
                             f'{np.unique(labels)[:5].tolist()}')
        if not 0.5 < gt_prob < 1.0:
            raise ValueError(f'gt_prob must be in (0.5, 1), got {gt_prob}')
        _check_inputs(labels, image)
        size = _reduced_size(*labels.shape, self.max_side)
        fg = torch.from_numpy(_resize(labels, size)).reshape(-1)
        return self._mean_field((1.0 - gt_prob) + (2 * gt_prob - 1.0) * fg,
                                image)

    def _mean_field(self, prob: torch.Tensor,
                    image: np.ndarray) -> torch.Tensor:
        """Mean field from ``P(fg)`` [N] on the reduced grid; ``Q`` [2, H, W]
        at the image's size."""
        full_size = np.asarray(image).shape[:2]
        size = _reduced_size(*full_size, self.max_side)
        prob = prob.clamp(self.eps, 1.0 - self.eps)
        unary = torch.stack([1.0 - prob, prob]).log()  # -psi_u, [2, N]

        (h, w), (height, width) = size, full_size
        ys, xs = _centres(h, height), _centres(w, width)
        position = _PositionKernel(ys, xs, self.pos_xy_std)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), -1)
        rgb = torch.from_numpy(_resize(np.asarray(image), size))
        bilateral = _bilateral_kernel(
            torch.cat([grid / self.bi_xy_std, rgb / self.bi_rgb_std],
                      dim=-1).reshape(h * w, 5), self.chunk)

        q = unary.softmax(dim=0)
        for _ in range(self.iterations):
            message = (self.bi_w * (q @ bilateral) +  # symmetric kernel
                       self.pos_w * position(q.reshape(2, h, w)).flatten(1))
            q = (unary + message).softmax(dim=0)
        return _upsample(q.reshape(2, h, w), full_size)

    def __call__(self, response: np.ndarray, image: np.ndarray) -> np.ndarray:
        """response [H, W], image [H, W, 3] uint8 RGB -> labels [H, W]."""
        return self._decide(self.marginals(response, image))

    def refine_labels(self, labels: np.ndarray, image: np.ndarray,
                      gt_prob: float = 0.7) -> np.ndarray:
        """Hard {0, 1} labels [H, W] -> CRF-refined labels [H, W] uint8
        (pydensecrf's ``crf_inference_label``, see :meth:`label_marginals`)."""
        return self._decide(self.label_marginals(labels, image, gt_prob))

    def _decide(self, q: torch.Tensor) -> np.ndarray:
        confidence, labels = q.max(dim=0)
        labels = labels.numpy().astype(np.uint8)
        if self.ignore_below is not None:
            labels[confidence.numpy() < self.ignore_below] = IGNORE_INDEX
        return labels


def _disk_taps(radius: int) -> torch.Tensor:
    """Neighbour offsets (dy, dx) with ``dy^2 + dx^2 <= radius^2``, [K, 2];
    the first one is the pixel itself, (0, 0)."""
    r = torch.arange(-radius, radius + 1)
    dy, dx = (t.flatten() for t in torch.meshgrid(r, r, indexing='ij'))
    keep = (dy.square() + dx.square() <= radius**2) & ((dy != 0) | (dx != 0))
    others = torch.stack([dy[keep], dx[keep]], dim=1)
    return torch.cat([torch.zeros(1, 2, dtype=torch.long), others])


def _neighbours(x: torch.Tensor,
                taps: torch.Tensor,
                pad_value: float = 0.0) -> torch.Tensor:
    """``out[..., k, i, j] = x[..., i + dy_k, j + dx_k]`` for ``x``
    [..., h, w] and ``taps`` [K, 2] (``pad_value`` outside), [..., K, h, w].
    """
    h, w = x.shape[-2:]
    r = int(taps.abs().max())
    padded = F.pad(x, (r, r, r, r), value=pad_value)
    return torch.stack([
        padded[..., r + dy:r + dy + h, r + dx:r + dx + w]
        for dy, dx in taps.tolist()
    ], dim=-3)


def _tap_groups(taps: torch.Tensor, numel: int,
                budget: int = 1 << 24) -> List[torch.Tensor]:
    """Split ``taps`` [K, 2] into groups so that a [C, group, h, w] tensor
    (``numel = C * h * w``) stays within ``budget`` elements (64 MB), which
    matters only for many extra feature channels."""
    size = max(1, budget // max(1, numel))
    return list(torch.split(taps, size))


def random_walk(v: torch.Tensor, trans: torch.Tensor, taps: torch.Tensor,
                iterations: int) -> torch.Tensor:
    """``iterations`` steps of ``v <- T v`` for ``v`` [h, w] and a sparse
    transition ``trans`` [K, h, w] over the neighbour offsets ``taps``
    [K, 2] (dy, dx): ``v'(p) = sum_k trans[k, p] v(p + taps[k])``.

    Values are floored at 1e-12 to keep float32 denormals out.
    """
    for _ in range(iterations):
        v = (trans * _neighbours(v, taps)).sum(0).clamp_min_(1e-12)
    return v


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor,
                  l2: float, steps: int) -> torch.Tensor:
    """Weighted L2-regularised logistic regression with the slopes
    constrained to be <= 0, by projected Newton steps with backtracking.

    Minimises ``sum_m weight_m (softplus(z_m) - y_m z_m) + l2 / 2 |v|^2``,
    ``z = b + x v``, for ``x`` [M, C], ``y`` [M] in {0, 1}; returns
    ``theta = [b, v]`` [C + 1] (float64).
    """
    x = torch.cat([torch.ones(len(x), 1, dtype=x.dtype), x], dim=1)
    reg = torch.full((x.shape[1], ), l2, dtype=x.dtype)
    reg[0] = 0.0

    def objective(theta):
        z = x @ theta
        return (weight * (F.softplus(z) - y * z)).sum() + 0.5 * (
            reg * theta.square()).sum()

    theta = torch.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(steps):
        p = torch.sigmoid(x @ theta)
        grad = x.t() @ (weight * (p - y)) + reg * theta
        hess = (x.t() * (weight * p * (1 - p))) @ x + torch.diag(reg + 1e-9)
        step = torch.linalg.solve(hess, grad)
        current = objective(theta)
        for t in 0.5**torch.arange(12, dtype=x.dtype):
            candidate = theta - t * step
            candidate[1:].clamp_max_(0.0)
            if objective(candidate) < current:
                break
        else:
            break  # no descent direction left: converged
        theta = candidate
    return theta


@TASK_UTILS.register_module()
class AffinityRandomWalkRefiner:
    """Per-image learned affinity + random walk, in the spirit of IRN.

    On a reduced grid (longer side ``max_side``) with features ``f`` =
    [RGB in [0, 1], optional ``features`` [C, h', w'] resized bilinearly]:

    1. Seeds: :class:`ThresholdRefiner` (``fg_thr``, ``bg_thr``) on the
       area-averaged response.
    2. Affinity: a logistic model of feature differences,
       ``a_ij = sigmoid(b - sum_c w_c |f_ic - f_jc| - w_e e_ij)`` over the
       RGB channels ``c``, with ``e_ij`` the root mean square difference of
       the extra features (if any) and all ``w >= 0`` (more different, less
       affine), fitted by projected Newton steps on a
       class-balanced, L2-regularised logistic loss over seed pairs:
       positives are neighbour pairs (``0 < |i - j| <= radius``) of seeds
       of the same class, negatives are neighbour pairs of seeds of
       different classes plus ``num_random_neg`` random long-range fg-bg
       seed pairs.
    3. Random walk over the disk of ``radius`` (self included, ``a_ii =
       sigmoid(b)``): ``T = D^-1 A^beta`` with ``D_ii = sum_j a_ij^beta``;
       the reduced response ``v`` is propagated ``v <- T v`` for
       ``iterations`` steps (sparse: one weight map per offset, never an
       [N, N] matrix), upsampled bilinearly to [H, W], divided by its
       maximum and labelled 1 where ``v / max(v) > threshold``, else 0.

    If the reduced grid has no fg seed or no bg seed (or no positive or
    negative pair) the result is the :class:`ThresholdRefiner` labels at
    full resolution (with 255 in the ignore band).

    Differences from IRN (Ahn et al., CVPR 2019): IRN trains an affinity
    CNN over the whole dataset from CAM seeds, with inter-pixel class
    boundary maps whose path-wise maxima give the affinities, propagates
    with a transition matrix raised to a power by repeated squaring, and
    labels by argmax against a background score. Here the affinity is a
    per-image logistic model of endpoint feature differences (no boundary
    map, no learned features, nothing shared across images), the seed pairs
    are noisy where the response leaks, the negatives include long-range
    pairs because the ignore band is often wider than ``radius``, and the
    walk is plain repeated sparse multiplication of the response followed
    by a threshold relative to its maximum.

    Args:
        fg_thr (float): Foreground seed threshold. Defaults to 0.3.
        bg_thr (float): Background seed threshold. Defaults to 0.1.
        radius (int): Neighbourhood radius on the reduced grid. Defaults
            to 5.
        max_side (int): Longer side of the reduced grid. Defaults to 64.
        beta (float): Affinity exponent. Defaults to 8.
        iterations (int): Random-walk steps. Defaults to 64.
        threshold (float): Threshold relative to the propagated map's
            maximum. Defaults to 0.5.
        newton_steps (int): Maximum Newton steps of the logistic fit.
            Defaults to 20.
        l2 (float): L2 penalty on the logistic slopes (features are scaled
            by their mean training difference). Defaults to 1e-3.
        max_pairs (int): Training pairs kept per class (random subset).
            Defaults to 20000.
        num_random_neg (int): Random long-range negatives. Defaults to 2000.
        seed (int): Seed of the pair sampling. Defaults to 0.
    """

    def __init__(self,
                 fg_thr: float = 0.3,
                 bg_thr: float = 0.1,
                 radius: int = 5,
                 max_side: int = 64,
                 beta: float = 8.0,
                 iterations: int = 64,
                 threshold: float = 0.5,
                 newton_steps: int = 20,
                 l2: float = 1e-3,
                 max_pairs: int = 20000,
                 num_random_neg: int = 2000,
                 seed: int = 0):
        if radius < 1 or max_side < 1:
            raise ValueError('radius and max_side must be >= 1')
        if iterations < 0 or newton_steps < 0 or l2 < 0:
            raise ValueError('iterations, newton_steps and l2 must be >= 0')
        if beta <= 0 or not 0.0 <= threshold < 1.0:
            raise ValueError('need beta > 0 and 0 <= threshold < 1')
        self.seeds = ThresholdRefiner(fg_thr, bg_thr)
        self.radius = int(radius)
        self.max_side = int(max_side)
        self.beta = float(beta)
        self.iterations = int(iterations)
        self.threshold = float(threshold)
        self.newton_steps = int(newton_steps)
        self.l2 = float(l2)
        self.max_pairs = int(max_pairs)
        self.num_random_neg = int(num_random_neg)
        self.seed = int(seed)

    @staticmethod
    def _grid_features(image: np.ndarray, features,
                       size: Tuple[int, int]) -> torch.Tensor:
        """[C, h, w]: RGB in [0, 1], then the resized extra features."""
        rgb = _resize(np.asarray(image), size) / 255.0
        feats = [torch.from_numpy(rgb).permute(2, 0, 1)]
        if features is not None:
            extra = torch.as_tensor(np.asarray(features), dtype=torch.float32)
            if extra.ndim != 3:
                raise ValueError(f'features must be [C, h, w], got '
                                 f'{tuple(extra.shape)}')
            feats.append(
                F.interpolate(extra[None], size=size, mode='bilinear',
                              align_corners=False)[0])
        return torch.cat(feats)

    @staticmethod
    def _pair_inputs(f_i: torch.Tensor, f_j: torch.Tensor) -> torch.Tensor:
        """Regression inputs of pairs of features [C, ...] -> [..., D]:
        ``|dR|, |dG|, |dB|`` and, with extra channels, their root mean
        square difference (one input, so many noisy channels cannot add up).
        """
        diff = f_i - f_j
        inputs = list(diff[:3].abs())
        if len(diff) > 3:
            inputs.append(diff[3:].square().mean(0).sqrt())
        return torch.stack(inputs, dim=-1)

    def _pairs(self, feats: torch.Tensor, seeds: torch.Tensor,
               taps: torch.Tensor, gen: torch.Generator):
        """Seed pairs: (inputs [M, D], same class [M] bool)."""
        inputs, same = [], []
        for group in _tap_groups(taps[1:], feats.numel()):
            other = _neighbours(seeds, group, pad_value=IGNORE_INDEX)
            keep = (seeds != IGNORE_INDEX) & (other != IGNORE_INDEX)
            pair = self._pair_inputs(_neighbours(feats, group), feats[:, None])
            inputs.append(pair[keep])
            same.append((other == seeds)[keep])
        flat = feats.flatten(1)
        fg = torch.nonzero(seeds.flatten() == 1)[:, 0]
        bg = torch.nonzero(seeds.flatten() == 0)[:, 0]
        n = self.num_random_neg
        i = fg[torch.randint(len(fg), (n, ), generator=gen)]
        j = bg[torch.randint(len(bg), (n, ), generator=gen)]
        inputs.append(self._pair_inputs(flat[:, i], flat[:, j]))
        same.append(torch.zeros(n, dtype=torch.bool))
        return torch.cat(inputs), torch.cat(same)

    def _subsample(self, x: torch.Tensor, gen: torch.Generator):
        if len(x) <= self.max_pairs:
            return x
        return x[torch.randperm(len(x), generator=gen)[:self.max_pairs]]

    def fit_affinity(self, inputs: torch.Tensor, same: torch.Tensor,
                     gen: torch.Generator):
        """Fit the affinity on pairs ``inputs`` [M, D], ``same`` [M];
        return ``(b, w)`` (``logit a = b - inputs @ w``) or None without
        positive or negative pairs."""
        pos = self._subsample(inputs[same], gen).double()
        neg = self._subsample(inputs[~same], gen).double()
        if len(pos) == 0 or len(neg) == 0:
            return None
        x = torch.cat([pos, neg])
        scale = x.mean(0).clamp_min(1e-6)
        y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).double()
        weight = torch.cat([
            torch.full((len(pos), ), 0.5 / len(pos)),
            torch.full((len(neg), ), 0.5 / len(neg))
        ]).double()
        theta = _fit_logistic(x / scale, y, weight, self.l2,
                              self.newton_steps)
        return theta[0].float(), (-theta[1:] / scale).float()

    def transition(self, feats: torch.Tensor, b: torch.Tensor,
                   w: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        """Sparse ``T = D^-1 A^beta``: ``T[k, i, j]`` is the probability of
        stepping from pixel (i, j) to (i, j) + ``taps[k]``, [K, h, w]."""
        log_a = []
        for group in _tap_groups(taps, feats.numel()):
            pair = self._pair_inputs(_neighbours(feats, group), feats[:, None])
            logit = b - pair @ w
            log_a.append(F.logsigmoid(logit) * self.beta)
        log_a = torch.cat(log_a)
        inside = _neighbours(torch.ones(feats.shape[1:]), taps) > 0
        log_a.masked_fill_(~inside, -math.inf)
        log_a -= log_a.max(dim=0).values  # T ignores row scales; max -> 1
        log_a.masked_fill_(log_a < _LOG_FLOOR, -math.inf)
        a_beta = log_a.exp()
        return a_beta / a_beta.sum(0, keepdim=True)

    @torch.no_grad()
    def propagate(self, response: np.ndarray, image: np.ndarray,
                  features=None) -> Optional[torch.Tensor]:
        """Random-walk map [H, W] divided by its maximum, or None when the
        seeds cannot fit an affinity."""
        response = _check_inputs(response, image)
        full_size = response.shape
        size = _reduced_size(*full_size, self.max_side)
        small = _resize(response, size)
        seeds = torch.from_numpy(self.seeds(small)).long()
        if not ((seeds == 1).any() and (seeds == 0).any()):
            return None
        feats = self._grid_features(image, features, size)
        taps = _disk_taps(self.radius)
        gen = torch.Generator().manual_seed(self.seed)
        affinity = self.fit_affinity(*self._pairs(feats, seeds, taps, gen),
                                     gen)
        if affinity is None:
            return None
        trans = self.transition(feats, *affinity, taps)
        v = random_walk(torch.from_numpy(small), trans, taps, self.iterations)
        v = _upsample(v[None], full_size)[0]
        return v / v.max().clamp_min(1e-12)

    def __call__(self,
                 response: np.ndarray,
                 image: np.ndarray,
                 features=None) -> np.ndarray:
        """response [H, W], image [H, W, 3] uint8 RGB, optional features
        [C, h, w] (e.g. backbone maps) -> labels [H, W]."""
        v = self.propagate(response, image, features)
        if v is None:
            return self.seeds(response, image)
        return (v > self.threshold).numpy().astype(np.uint8)
