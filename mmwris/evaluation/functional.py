"""Pure per-sample functions for referring image segmentation metrics.

Every function accepts numpy arrays or torch tensors (converted to numpy).
Boxes are ``[x1, y1, x2, y2]`` in continuous pixel coordinates: pixel
``(x, y)`` covers ``[x, x + 1] x [y, y + 1]``, so a COCO box ``[x, y, w, h]``
is ``[x, y, x + w, y + h]``.
"""
from typing import Optional, Tuple

import cv2
import numpy as np
import torch

__all__ = [
    'to_numpy', 'response_peak', 'point_in_mask', 'point_in_box',
    'mask_to_box', 'box_iou', 'mask_intersection_union', 'mask_iou'
]


def to_numpy(x) -> np.ndarray:
    """Convert a tensor (any device / dtype) or array-like to numpy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _as_2d(x, name: str) -> np.ndarray:
    x = to_numpy(x)
    if x.ndim != 2:
        raise ValueError(f'{name} must have shape [H, W], got {x.shape}')
    return x


def _as_mask(x, name: str) -> np.ndarray:
    return _as_2d(x, name).astype(bool)


def response_peak(response) -> Tuple[int, int]:
    """Location ``(y, x)`` of the maximum of a response map [H, W].

    Ties are broken by the first maximum in raster (row-major) order, i.e.
    ``numpy.argmax`` on the flattened map, as in the TRIS code. A constant
    map therefore peaks at ``(0, 0)``.
    """
    response = _as_2d(response, 'response')
    y, x = np.unravel_index(int(np.argmax(response)), response.shape)
    return int(y), int(x)


def point_in_mask(response, gt_mask) -> bool:
    """PointM hit (TRIS): the peak of ``response`` [H, W] lies on
    ``gt_mask`` [H, W]."""
    gt_mask = _as_mask(gt_mask, 'gt_mask')
    response = _as_2d(response, 'response')
    if response.shape != gt_mask.shape:
        raise ValueError(f'response {response.shape} and gt_mask '
                         f'{gt_mask.shape} differ in shape')
    y, x = response_peak(response)
    return bool(gt_mask[y, x])


def point_in_box(response, box_xyxy) -> bool:
    """PointIt hit (pointing game): the centre ``(x + 0.5, y + 0.5)`` of the
    peak pixel of ``response`` [H, W] lies in the closed box
    ``[x1, x2] x [y1, y2]`` (``box_xyxy``: [4])."""
    y, x = response_peak(response)
    x1, y1, x2, y2 = to_numpy(box_xyxy).astype(np.float64).reshape(4)
    cx, cy = x + 0.5, y + 0.5
    return bool(x1 <= cx <= x2 and y1 <= cy <= y2)


def mask_to_box(mask, mode: str = 'largest_cc') -> Optional[np.ndarray]:
    """Tight box [4] (xyxy, float64) of a mask [H, W]; ``None`` if empty.

    Args:
        mask: Binary mask [H, W].
        mode: ``'largest_cc'`` boxes the largest 8-connected component
            (the first in raster order among equally large ones);
            ``'all'`` boxes every foreground pixel.
    """
    if mode not in ('largest_cc', 'all'):
        raise ValueError(f"mode must be 'largest_cc' or 'all', got {mode!r}")
    mask = _as_mask(mask, 'mask')
    if not mask.any():
        return None
    if mode == 'all':
        ys, xs = np.nonzero(mask)
        return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                        dtype=np.float64)
    _, _, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8)
    label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = stats[label, :4]
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def box_iou(a_xyxy, b_xyxy) -> float:
    """IoU of two boxes [4] (xyxy); 0 when their union is empty."""
    ax1, ay1, ax2, ay2 = to_numpy(a_xyxy).astype(np.float64).reshape(4)
    bx1, by1, bx2, by2 = to_numpy(b_xyxy).astype(np.float64).reshape(4)
    inter = (max(0.0, min(ax2, bx2) - max(ax1, bx1)) *
             max(0.0, min(ay2, by2) - max(ay1, by1)))
    area_a = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1)
    area_b = max(0.0, bx2 - bx1) * max(0.0, by2 - by1)
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def mask_intersection_union(pred, gt) -> Tuple[int, int]:
    """Pixel counts ``(|pred & gt|, |pred | gt|)`` of two masks [H, W]."""
    pred = _as_mask(pred, 'pred')
    gt = _as_mask(gt, 'gt')
    if pred.shape != gt.shape:
        raise ValueError(
            f'pred {pred.shape} and gt {gt.shape} differ in shape')
    return int(np.logical_and(pred, gt).sum()), int(
        np.logical_or(pred, gt).sum())


def mask_iou(pred, gt) -> float:
    """IoU of two masks [H, W].

    When the union is empty (both masks empty) the masks agree perfectly and
    1.0 is returned.
    """
    inter, union = mask_intersection_union(pred, gt)
    return inter / union if union > 0 else 1.0
