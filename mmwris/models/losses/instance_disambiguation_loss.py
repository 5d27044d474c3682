from typing import Dict

import torch
import torch.nn as nn
from torch import Tensor

from mmwris.registry import MODELS
from ..utils.proposal_ops import (NORMALIZE_MODES, normalize_response,
                                  proposal_alignment, soft_iou)


@MODELS.register_module()
class InstanceDisambiguationLoss(nn.Module):
    """PCNet's Instance-aware Disambiguation (IaD), Sec. 3.4.

    For P pairs of expressions of the same image that refer to different
    objects, with ``p_a, p_b = normalize(maps_a), normalize(maps_b)``
    ``[P, h, w]`` and proposals ``m`` ``[P, M, h, w]``:

    - ``overlap = mean_p soft_iou(p_a, p_b)``;
    - ``q_a = softmax_{j valid}(soft_iou(p_a, m_j) / temperature)``, same
      for ``q_b``, and ``L_select = mean_p sum_j q_a,j * q_b,j``: the
      probability that both expressions select the same proposal (pairs
      whose image has no valid proposal are left out of this mean).

    Args:
        loss_weight (float): Weight of both terms.
        overlap_weight (float): Extra weight of the overlap term.
        select_weight (float): Extra weight of the selection term.
        temperature (float): Softmax temperature over the proposals.
        normalize (str): ``'sigmoid'`` or ``'minmax'``.
        eps (float): Denominator guard.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 overlap_weight: float = 1.0,
                 select_weight: float = 1.0,
                 temperature: float = 0.1,
                 normalize: str = 'sigmoid',
                 eps: float = 1e-6) -> None:
        super().__init__()
        if normalize not in NORMALIZE_MODES:
            raise ValueError(f'normalize must be one of {NORMALIZE_MODES}, '
                             f'got {normalize!r}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.loss_weight = loss_weight
        self.overlap_weight = overlap_weight
        self.select_weight = select_weight
        self.temperature = temperature
        self.normalize = normalize
        self.eps = eps

    def forward(self, maps_a: Tensor, maps_b: Tensor, proposals: Tensor,
                valid: Tensor) -> Dict[str, Tensor]:
        """Compute both terms.

        Args:
            maps_a (Tensor): ``[P, h, w]`` raw responses to the first
                expression of each pair (P may be 0).
            maps_b (Tensor): ``[P, h, w]`` raw responses to the second.
            proposals (Tensor): ``[P, M, h, w]`` soft masks in [0, 1] of
                each pair's image.
            valid (Tensor): ``[P, M]`` bool, real (non-padding) proposals.

        Returns:
            dict: ``loss_iad_overlap`` and ``loss_iad_select``.
        """
        if (maps_a.dim() != 3 or maps_b.shape != maps_a.shape
                or proposals.dim() != 4
                or proposals.shape[0] != maps_a.shape[0]
                or proposals.shape[-2:] != maps_a.shape[-2:]
                or tuple(valid.shape) != tuple(proposals.shape[:2])):
            raise ValueError(
                'InstanceDisambiguationLoss expects maps_a, maps_b [P, h, w], '
                f'proposals [P, M, h, w] and valid [P, M], got '
                f'{tuple(maps_a.shape)}, {tuple(maps_b.shape)}, '
                f'{tuple(proposals.shape)} and {tuple(valid.shape)}')
        zero = maps_a.sum() * 0 + maps_b.sum() * 0
        if maps_a.shape[0] == 0:
            return dict(loss_iad_overlap=zero, loss_iad_select=zero)
        valid = valid.bool()
        prob_a = normalize_response(maps_a, self.normalize, self.eps)
        prob_b = normalize_response(maps_b, self.normalize, self.eps)
        overlap = soft_iou(prob_a, prob_b, self.eps).mean()

        has_props = valid.any(-1)
        if has_props.any():
            prob = torch.stack((prob_a, prob_b), dim=1)[has_props]
            props = proposals[has_props].to(prob.dtype)
            mask = valid[has_props][:, None]
            logits = proposal_alignment(prob, props, self.eps)
            logits = (logits / self.temperature).masked_fill(
                ~mask, float('-inf'))
            choice = logits.softmax(-1)
            select = (choice[:, 0] * choice[:, 1]).sum(-1).mean()
        else:
            select = zero
        return dict(
            loss_iad_overlap=self.loss_weight * self.overlap_weight * overlap,
            loss_iad_select=self.loss_weight * self.select_weight * select)

