from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS


def masked_bce_with_logits(logits: Tensor,
                           target: Tensor,
                           ignore_index: int = 255,
                           reduction: str = 'sample') -> Tensor:
    """Binary cross-entropy that skips ``ignore_index`` pixels.

    With ``V_b`` the valid pixels of sample ``b`` (``target != ignore``)::

        l_bp = -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]
        'sample': loss = 1/B sum_b (1/|V_b| sum_{p in V_b} l_bp)
        'pixel':  loss = sum_b sum_{p in V_b} l_bp / sum_b |V_b|

    A sample (``'sample'``) or batch (``'pixel'``) without valid pixels
    contributes 0.

    Args:
        logits (Tensor): ``[B, H, W]``.
        target (Tensor): ``[B, H, W]`` with values 0, 1 and ``ignore_index``.
        ignore_index (int): Label of ignored pixels.
        reduction (str): ``'sample'``: mean over each sample's valid pixels,
            then over the batch (every expression weighs the same);
            ``'pixel'``: mean over all valid pixels of the batch.
    """
    if logits.shape != target.shape:
        raise ValueError(f'logits {tuple(logits.shape)} and target '
                         f'{tuple(target.shape)} must have the same shape.')
    valid = target != ignore_index
    if bool(((target != 0) & (target != 1) & valid).any()):
        values = torch.unique(target).tolist()
        raise ValueError(f'Binary targets must be 0, 1 or {ignore_index} '
                         f'(ignored), got the values {values}.')
    labels = (target == 1).to(logits.dtype)
    losses = F.binary_cross_entropy_with_logits(
        logits, labels, reduction='none') * valid
    if reduction == 'sample':
        per_sample = losses.flatten(1).sum(1) / valid.flatten(1).sum(
            1).clamp_min(1)
        return per_sample.mean()
    if reduction == 'pixel':
        return losses.sum() / valid.sum().clamp_min(1)
    raise ValueError(f'reduction must be "sample" or "pixel", not '
                     f'"{reduction}".')


@MODELS.register_module()
class MaskedBCELoss(nn.Module):
    """:func:`masked_bce_with_logits` as a registered loss.

    Args:
        loss_weight (float): Weight of the loss.
        reduction (str): ``'sample'`` or ``'pixel'``.
        ignore_index (int): Label of ignored pixels.
        loss_name (str): Key of the loss in the loss dict.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 reduction: str = 'sample',
                 ignore_index: int = 255,
                 loss_name: str = 'loss_bce') -> None:
        super().__init__()
        if reduction not in ('sample', 'pixel'):
            raise ValueError('reduction must be "sample" or "pixel", not '
                             f'"{reduction}".')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.ignore_index = ignore_index
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, logits: Tensor, target: Tensor,
                weight: Optional[float] = None) -> Tensor:
        """``logits [B, H, W]``, ``target [B, H, W]``; ``weight`` (if given)
        replaces ``loss_weight`` (deep supervision's per-side weights)."""
        weight = self.loss_weight if weight is None else weight
        return weight * masked_bce_with_logits(
            logits, target, self.ignore_index, self.reduction)
