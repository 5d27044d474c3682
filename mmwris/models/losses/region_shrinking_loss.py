from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from ..utils.proposal_ops import (NORMALIZE_MODES, masked_argmax,
                                  normalize_response, proposal_alignment)


@MODELS.register_module()
class RegionShrinkingLoss(nn.Module):
    """PCNet's Region-aware Shrinking (RaS), Sec. 3.3.

    Follows the paper's description: every stage of the progressive
    comprehension aligns with the image's target proposal, and the
    ambiguity (response left on the other proposals) must not grow from one
    stage to the next. With ``p = normalize(maps)`` ``[B, S, h, w]``,
    proposals ``m`` ``[B, M, h, w]`` and ``a = soft_iou(p_s, m_j)``
    ``[B, S, M]``:

    - target ``j*``: the valid proposal with the highest ``a`` on the last
      stage (``select='response'``, no gradient through the choice) or
      with the highest ``clip_sim`` (``select='clip'``);
    - ``L_align = mean_b mean_s (1 - a[b, s, j*])``;
    - ``A[b, s] = mean_{j valid, j != j*} sum(p_s * m_j * (1 - m_j*)) /
      (sum(m_j * (1 - m_j*)) + eps)``, proposals with
      ``sum(m_j * (1 - m_j*)) < 1e-6`` (inside the target) skipped, ``A = 0``
      for an image without other proposals;
    - ``L_shrink = mean_b 1/(S-1) sum_{s<S} relu(A[b, s+1] - A'[b, s] +
      margin)``, ``A'`` detached if ``detach_previous`` (0 when S = 1).

    Images without valid proposals are left out of both means.

    Args:
        loss_weight (float): Weight of both terms.
        align_weight (float): Extra weight of the alignment term.
        margin (float): Margin of the shrinking hinge.
        select (str): ``'response'`` or ``'clip'`` target choice.
        normalize (str): ``'sigmoid'`` or ``'minmax'``.
        detach_previous (bool): Detach the earlier stage in the hinge, so
            only the later stage is pushed down.
        eps (float): Denominator guard.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 align_weight: float = 1.0,
                 margin: float = 0.0,
                 select: str = 'response',
                 normalize: str = 'sigmoid',
                 detach_previous: bool = True,
                 eps: float = 1e-6) -> None:
        super().__init__()
        if select not in ('response', 'clip'):
            raise ValueError(
                f"select must be 'response' or 'clip', got {select!r}")
        if normalize not in NORMALIZE_MODES:
            raise ValueError(f'normalize must be one of {NORMALIZE_MODES}, '
                             f'got {normalize!r}')
        self.loss_weight = loss_weight
        self.align_weight = align_weight
        self.margin = margin
        self.select = select
        self.normalize = normalize
        self.detach_previous = detach_previous
        self.eps = eps

    def forward(self,
                maps: Tensor,
                proposals: Tensor,
                valid: Tensor,
                clip_sim: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Compute both terms.

        Args:
            maps (Tensor): ``[B, S, h, w]`` raw responses of the S stages.
            proposals (Tensor): ``[B, M, h, w]`` soft masks in [0, 1].
            valid (Tensor): ``[B, M]`` bool, real (non-padding) proposals.
            clip_sim (Tensor, optional): ``[B, M]`` CLIP similarity of each
                proposal to the expression (needed by ``select='clip'``).

        Returns:
            dict: ``loss_ras_align`` and ``loss_ras_shrink``.
        """
        self._check_inputs(maps, proposals, valid, clip_sim)
        valid = valid.bool()
        prob = normalize_response(maps, self.normalize, self.eps)
        proposals = proposals.to(prob.dtype)
        align = proposal_alignment(prob, proposals, self.eps)
        if self.select == 'response':
            target = masked_argmax(align[:, -1], valid)
        else:
            target = masked_argmax(clip_sim, valid)

        keep = target >= 0
        if not keep.any():
            zero = maps.sum() * 0
            return dict(loss_ras_align=zero, loss_ras_shrink=zero)
        prob, proposals = prob[keep], proposals[keep]
        align, valid, target = align[keep], valid[keep], target[keep]
        num_images, num_stages, num_props = align.shape

        target_align = align.gather(
            2, target.view(-1, 1, 1).expand(-1, num_stages, 1))
        loss_align = (1 - target_align).mean()

        rows = torch.arange(num_images, device=maps.device)
        target_mask = proposals[rows, target]
        outside = proposals * (1 - target_mask[:, None])
        area = outside.sum(dim=(-2, -1))
        others = valid & (area >= 1e-6)
        others[rows, target] = False
        left = torch.bmm(prob.flatten(2), outside.flatten(2).transpose(1, 2))
        ratio = left / (area[:, None] + self.eps)
        others = others[:, None].to(ratio.dtype)
        ambiguity = (ratio * others).sum(-1) / others.sum(-1).clamp(min=1)

        if num_stages > 1:
            previous = ambiguity[:, :-1]
            if self.detach_previous:
                previous = previous.detach()
            loss_shrink = F.relu(ambiguity[:, 1:] - previous +
                                 self.margin).mean()
        else:
            loss_shrink = maps.sum() * 0
        return dict(
            loss_ras_align=self.loss_weight * self.align_weight * loss_align,
            loss_ras_shrink=self.loss_weight * loss_shrink)

    def _check_inputs(self, maps: Tensor, proposals: Tensor, valid: Tensor,
                      clip_sim: Optional[Tensor]) -> None:
        if (maps.dim() != 4 or proposals.dim() != 4
                or proposals.shape[0] != maps.shape[0]
                or proposals.shape[-2:] != maps.shape[-2:]
                or tuple(valid.shape) != tuple(proposals.shape[:2])):
            raise ValueError(
                'RegionShrinkingLoss expects maps [B, S, h, w], proposals '
                f'[B, M, h, w] and valid [B, M], got {tuple(maps.shape)}, '
                f'{tuple(proposals.shape)} and {tuple(valid.shape)}')
        if self.select == 'clip':
            if clip_sim is None:
                raise ValueError(
                    "RegionShrinkingLoss(select='clip') needs clip_sim")
            if tuple(clip_sim.shape) != tuple(valid.shape):
                raise ValueError(
                    f'clip_sim must be [B, M] = {tuple(valid.shape)}, got '
                    f'{tuple(clip_sim.shape)}')
