"""Prompt sampling for SAM training (SAM paper, appendix A "Training
algorithm"): a point uniformly inside the GT mask or the GT box with
noise, then correction points uniformly from the error region of the
previous prediction. Coordinates are pixel indices ``(x, y)`` in the
model's input frame (SAM's prompt encoder adds the 0.5)."""
from typing import Optional, Tuple

import torch
from torch import Tensor


def uniform_points(regions: Tensor,
                   generator: Optional[torch.Generator] = None) -> Tensor:
    """One pixel drawn uniformly from each region ``[N, H, W]`` (bool, none
    empty) -> ``[N, 2]`` float ``(x, y)``."""
    n, _, width = regions.shape
    flat = regions.reshape(n, -1).float()
    if (flat.sum(1) == 0).any():
        raise ValueError('uniform_points needs non-empty regions.')
    index = torch.multinomial(flat.cpu(), 1, generator=generator)[:, 0]
    index = index.to(regions.device)
    return torch.stack([index % width, index // width], 1).float()


def mask_boxes(masks: Tensor) -> Tensor:
    """Tight boxes of ``masks [N, H, W]`` (bool, none empty) -> ``[N, 4]``
    float ``x1, y1, x2, y2`` (inclusive pixel indices, as SA-1B boxes)."""
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[1:]
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    big = max(h, w)
    x1 = torch.where(cols, xs, big).amin(1)
    x2 = torch.where(cols, xs, -1).amax(1)
    y1 = torch.where(rows, ys, big).amin(1)
    y2 = torch.where(rows, ys, -1).amax(1)
    return torch.stack([x1, y1, x2, y2], 1).float()


def jitter_boxes(boxes: Tensor, noise: float = 0.1, max_noise: float = 20.,
                 bounds: Optional[Tuple[int, int]] = None,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """Add Gaussian noise to each coordinate of ``boxes [N, 4]`` (xyxy):
    std ``noise`` times the box side, clipped to ``max_noise`` pixels, then
    to ``bounds = (H, W)``."""
    side = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]],
                       1).repeat(1, 2) + 1
    eps = torch.randn(boxes.shape, generator=generator).to(boxes)
    delta = (eps * noise * side).clamp(-max_noise, max_noise)
    out = boxes + delta
    if bounds is not None:
        h, w = bounds
        out[:, 0::2] = out[:, 0::2].clamp(0, w - 1)
        out[:, 1::2] = out[:, 1::2].clamp(0, h - 1)
    return out


def correction_points(pred: Tensor, gt: Tensor,
                      generator: Optional[torch.Generator] = None
                      ) -> Tuple[Tensor, Tensor]:
    """A point uniformly from the error region of each prediction.

    Args:
        pred (Tensor): Binary predictions ``[N, H, W]`` (bool).
        gt (Tensor): GT masks ``[N, H, W]`` (bool, none empty).

    Returns:
        tuple: ``coords [N, 2]`` (x, y) and ``labels [N]`` (1: a missed
        object pixel, a positive point; 0: a false positive, a negative
        point). Where the prediction is exact, a positive point in ``gt``.
    """
    error = pred ^ gt
    exact = ~error.flatten(1).any(1)
    error[exact] = gt[exact]
    coords = uniform_points(error, generator)
    x, y = coords.long().unbind(1)
    labels = gt[torch.arange(len(gt), device=gt.device), y, x].long()
    return coords, labels
