"""Pure per-sample functions for referring image segmentation metrics.

Every function accepts numpy arrays or torch tensors (converted to numpy).
Boxes are ``[x1, y1, x2, y2]`` in continuous pixel coordinates: pixel
``(x, y)`` covers ``[x, x + 1] x [y, y + 1]``, so a COCO box ``[x, y, w, h]``
is ``[x, y, x + w, y + h]``.
"""
from functools import lru_cache
from typing import Optional, Tuple

import cv2
import numpy as np
import torch

__all__ = [
    'to_numpy', 'response_peak', 'point_in_mask', 'point_in_box',
    'mask_to_box', 'box_iou', 'mask_intersection_union', 'mask_iou',
    'released_gt_box', 'tris_generate_boxes', 'tris_box_hits'
]

POINT_RULES = ('pixel_center', 'index_inclusive')
# What the released TRIS ``generate_bbox`` returns when it finds no contour.
TRIS_DEFAULT_BOXES = ((0.0, 0.0, 1.0, 1.0, 0.0), (0.0, 0.0, 1.0, 1.0, 0.0))


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


def point_in_box(response, box_xyxy, rule: str = 'pixel_center') -> bool:
    """PointIt hit (pointing game): the peak pixel of ``response`` [H, W]
    lies in the closed box ``[x1, x2] x [y1, y2]`` (``box_xyxy``: [4]).

    Args:
        rule: ``'pixel_center'`` tests the centre ``(x + 0.5, y + 0.5)`` of
            the peak pixel; ``'index_inclusive'`` tests its integer index
            ``(x, y)`` (the released TRIS ``isCorrectHit``).
    """
    return peak_in_box(response_peak(response), box_xyxy, rule)


def peak_in_box(peak, box_xyxy, rule: str = 'pixel_center') -> bool:
    """:func:`point_in_box` for a known peak pixel ``(y, x)``."""
    if rule not in POINT_RULES:
        raise ValueError(f'rule must be one of {POINT_RULES}, got {rule!r}')
    y, x = peak
    x1, y1, x2, y2 = to_numpy(box_xyxy).astype(np.float64).reshape(4)
    if rule == 'pixel_center':
        x, y = x + 0.5, y + 0.5
    return bool(x1 <= x <= x2 and y1 <= y <= y2)


def released_gt_box(box_xyxy) -> np.ndarray:
    """The GT box [4] (xyxy, float64) as the released TRIS data set makes
    it: the COCO ``[x, y, w, h]`` cast to int *first*, then ``x2 = x + w``,
    ``y2 = y + h``.

    ``box_xyxy`` is ``[x, y, x + w, y + h]`` with non-negative coordinates;
    ``w`` and ``h`` are recovered as ``x2 - x1`` (to within 1e-6, which
    absorbs the rounding of the float sum).
    """
    x1, y1, x2, y2 = to_numpy(box_xyxy).astype(np.float64).reshape(4)
    x, y = np.floor(x1), np.floor(y1)
    w, h = np.floor(x2 - x1 + 1e-6), np.floor(y2 - y1 + 1e-6)
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def _cubehelix_gray(cam: np.ndarray) -> np.ndarray:
    """uint8 gray of the ``cubehelix`` colours of ``cam`` (in [0, 1])."""
    import matplotlib
    rgb = matplotlib.colormaps['cubehelix'](cam)[..., :3]
    rgb = (rgb.astype(np.float32) * 255.0).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


@lru_cache()
def _binary_gray() -> Tuple[int, int]:
    """The gray values of ``cam`` 0 and 1: a binary mask's whole palette."""
    gray = _cubehelix_gray(np.array([[0.0, 1.0]]))
    return int(gray[0, 0]), int(gray[0, 1])


def tris_generate_boxes(mask) -> np.ndarray:
    """Boxes ``[N, 5]`` (x1, y1, x2, y2, confidence; float64) of a mask
    [H, W], as the released TRIS ``generate_bbox`` makes them.

    The map is min-max normalised, coloured with matplotlib's
    ``cubehelix``, turned to 8-bit gray and cut at half its maximum
    (``THRESH_TOZERO``). Each contour (``RETR_TREE``, holes included) gives
    its bounding rect ``(x, y, w, h)`` and a confidence: the mean thresholded
    gray value inside the rect / 255. Non-maximum suppression (torchvision,
    IoU 0.05) is applied to the ``(x, y, w, h)`` rects *read as*
    ``(x1, y1, x2, y2)``, as released; the kept rects become
    ``(x, y, x + w, y + h)`` and those with a confidence above half the
    largest proposal confidence are returned, in NMS order.

    A constant map (empty or full mask) normalises to NaN, which the colour
    map paints black: like a map without contours it gives the released
    default ``[[0, 0, 1, 1, 0], [0, 0, 1, 1, 0]]``.

    A boolean mask normalises to exactly 0 and 1, so its gray image is
    looked up from the two colours (the same values, without colouring
    every pixel).
    """
    from torchvision.ops import nms

    cam = _as_2d(mask, 'mask')
    if cam.dtype == bool:
        if cam.all() or not cam.any():
            return np.array(TRIS_DEFAULT_BOXES, dtype=np.float64)
        gray = np.where(cam, *_binary_gray()[::-1]).astype(np.uint8)
    else:
        cam = cam.astype(np.float64)
        span = cam.max() - cam.min()
        if not span > 0:  # constant (or NaN) map: 0 / 0 -> black
            return np.array(TRIS_DEFAULT_BOXES, dtype=np.float64)
        gray = _cubehelix_gray((cam - cam.min()) / span)
    _, gray = cv2.threshold(gray, int(0.5 * np.max(gray)), 255,
                            cv2.THRESH_TOZERO)
    contours, _ = cv2.findContours(gray, cv2.RETR_TREE,
                                   cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) == 0:
        return np.array(TRIS_DEFAULT_BOXES, dtype=np.float64)
    rects = np.array([cv2.boundingRect(c) for c in contours],
                     dtype=np.float64)
    confs = np.array([gray[y:y + h, x:x + w].mean() / 255
                      for x, y, w, h in rects.astype(np.int64)])
    keep = nms(torch.from_numpy(rects).float(),
               torch.from_numpy(confs).float(), 0.05).numpy()
    x, y, w, h = rects[keep].T
    boxes = np.stack([x, y, x + w, y + h, confs[keep]], axis=1)
    return boxes[boxes[:, 4] > 0.5 * confs.max()]


def tris_box_hits(boxes, peak_yx: Tuple[int, int],
                  gt_box_xyxy) -> Tuple[bool, Optional[np.ndarray], float]:
    """Released TRIS box metrics of generated ``boxes`` [N, >= 4].

    Returns ``(acc_box, hit_box, box_iou)``: ``acc_box`` is True if *any*
    box has IoU > 0.5 with the GT box; ``hit_box`` is the *last* box that
    contains the peak ``(y, x)`` (inclusive), or the first box if none does,
    and ``box_iou`` its IoU with the GT box (the released "box mIoU" term).
    Without boxes: ``(False, None, 0.0)``.
    """
    boxes = to_numpy(boxes).astype(np.float64)
    if boxes.size == 0:
        return False, None, 0.0
    y, x = peak_yx
    hit_box = boxes[0]
    for box in boxes:
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            hit_box = box
    acc = any(box_iou(box[:4], gt_box_xyxy) > 0.5 for box in boxes)
    return bool(acc), hit_box, box_iou(hit_box[:4], gt_box_xyxy)


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
