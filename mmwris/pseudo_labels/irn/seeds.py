"""IRN seeds of a referring response: confident foreground / background.

The released TRIS pipeline (``IRNet/step_refer/cam_to_ir_label.py``)
normalises the step-1 response ``cam = relu(R) / max`` and thresholds it
twice: ``fg = cam > fg_thr`` (0.3) and ``bg_free = cam > bg_thr`` (0.1),
each refined by a dense CRF whose unary comes from those hard labels
(``gt_prob`` 0.7). Pixels that stay foreground after the CRF are 1, pixels
that are background under both maps are 0, the band in between is 255.
"""
from typing import Optional

import numpy as np

from ..refiners import IGNORE_INDEX

__all__ = ['normalized_cam', 'irn_seed_labels']


def normalized_cam(response: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """``relu(R) / (max relu(R) + eps)``, float32 [H, W] in [0, 1)."""
    response = np.nan_to_num(np.asarray(response, dtype=np.float32))
    if response.ndim != 2:
        raise ValueError(f'response must be [H, W], got {response.shape}')
    cam = np.maximum(response, 0.0)
    return cam / (cam.max() + eps)


def irn_seed_labels(cam: np.ndarray,
                    image: np.ndarray,
                    fg_thr: float = 0.3,
                    bg_thr: float = 0.1,
                    crf=None,
                    gt_prob: float = 0.7) -> np.ndarray:
    """Seed labels [H, W] uint8: 1 foreground, 0 background, 255 unsure.

    ``fg = [cam > fg_thr]`` and ``not_bg = [cam > bg_thr]`` (a pixel exactly
    at a threshold is background: the released ``argmax([thr, cam])`` picks
    the first on ties), each refined by ``crf.refine_labels`` when a
    :class:`DenseCRFRefiner` is given; then ``1`` where ``fg``, ``0`` where
    neither, ``255`` where only ``not_bg``.

    Args:
        cam (np.ndarray): [H, W] normalised response (:func:`normalized_cam`).
        image (np.ndarray): [H, W, 3] uint8 RGB (used by the CRF only).
        fg_thr (float): Foreground threshold. Defaults to 0.3.
        bg_thr (float): Background threshold. Defaults to 0.1.
        crf (DenseCRFRefiner, optional): Label-unary CRF; ``None`` keeps the
            thresholded maps.
        gt_prob (float): Confidence of a hard label in the CRF unary.
    """
    if not 0.0 <= bg_thr <= fg_thr <= 1.0:
        raise ValueError('need 0 <= bg_thr <= fg_thr <= 1, got '
                         f'bg_thr={bg_thr}, fg_thr={fg_thr}')
    cam = np.asarray(cam, dtype=np.float32)
    fg = (cam > fg_thr).astype(np.uint8)
    not_bg = (cam > bg_thr).astype(np.uint8)
    if crf is not None:
        fg = crf.refine_labels(fg, image, gt_prob)
        not_bg = crf.refine_labels(not_bg, image, gt_prob)
    labels = np.full(cam.shape, IGNORE_INDEX, dtype=np.uint8)
    labels[fg == 1] = 1
    labels[(fg == 0) & (not_bg == 0)] = 0
    return labels
