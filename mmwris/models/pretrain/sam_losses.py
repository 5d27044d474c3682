"""SAM's mask losses: focal + dice (20 : 1) per predicted mask, the
minimum over the multimask outputs, and the MSE of the IoU prediction."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def focal_loss(logits: Tensor, gt: Tensor, alpha: float = 0.25,
               gamma: float = 2.0) -> Tensor:
    """Sigmoid focal loss averaged over pixels: ``logits [N, M, H, W]``,
    ``gt [N, H, W]`` (0/1) -> ``[N, M]``. ``alpha < 0``: no class
    weighting."""
    target = gt[:, None].to(logits).expand_as(logits)
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t)**gamma
    if alpha >= 0:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss.flatten(2).mean(2)


def dice_loss(logits: Tensor, gt: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft dice loss ``1 - (2|P G| + s) / (|P| + |G| + s)``:
    ``logits [N, M, H, W]``, ``gt [N, H, W]`` -> ``[N, M]``."""
    prob = logits.sigmoid().flatten(2)
    target = gt[:, None].to(logits).flatten(2)
    inter = (prob * target).sum(2)
    return 1 - (2 * inter + smooth) / (prob.sum(2) + target.sum(2) + smooth)


def mask_losses(logits: Tensor, gt: Tensor, focal_weight: float = 20.0,
                dice_weight: float = 1.0, alpha: float = 0.25,
                gamma: float = 2.0) -> Tensor:
    """``focal_weight * focal + dice_weight * dice`` per mask ``[N, M]``."""
    return (focal_weight * focal_loss(logits, gt, alpha, gamma) +
            dice_weight * dice_loss(logits, gt))


def mask_ious(logits: Tensor, gt: Tensor) -> Tensor:
    """IoU of the binarised masks (``logits > 0``) ``[N, M, H, W]`` with
    ``gt [N, H, W]`` -> ``[N, M]`` (1 where both are empty)."""
    pred = (logits > 0).flatten(2)
    target = gt[:, None].bool().flatten(2)
    inter = (pred & target).sum(2).float()
    union = (pred | target).sum(2).float()
    return torch.where(union > 0, inter / union.clamp(min=1),
                       torch.ones_like(union))


def min_over_masks(losses: Tensor) -> Tuple[Tensor, Tensor]:
    """Per prompt, the lowest loss over the M candidates ``[N, M]`` ->
    ``(loss [N], index [N])``: only that mask is trained."""
    loss, index = losses.min(1)
    return loss, index
