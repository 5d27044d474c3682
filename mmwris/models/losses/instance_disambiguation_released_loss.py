from typing import Dict, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmwris.registry import MODELS
from .region_shrinking_released_loss import released_proposal_response


def straight_through_onehot(scores: Tensor) -> Tensor:
    """Forward: the one-hot of ``argmax`` (first maximum) over the last
    axis; backward: the gradient of ``softmax(scores)``."""
    soft = torch.softmax(scores, dim=-1)
    hard = torch.zeros_like(scores).scatter(
        -1, scores.argmax(-1, keepdim=True), 1.0)
    return (hard - soft).detach() + soft


@MODELS.register_module()
class ReleasedInstanceDisambiguationLoss(nn.Module):
    """PCNet's Instance-aware Disambiguation (IaD) as the released code
    computes it (``SAM_diversify_loss``), per stage.

    With the main and partner maps normalised as in RaS
    (:func:`released_proposal_response`), ``s[b, n] = max_pixels(p_b *
    m_bn)`` (and ``s'`` of the partner), ``oh`` the straight-through
    one-hot of ``s`` (:func:`straight_through_onehot`) and ``mark_b`` =
    the partner is an expression of the same image::

        iad_s = 1 - sum_b mark_b |oh_b - oh'_b|_1 / (2 sum_b mark_b + 1e-4)

    ``loss_iad = loss_weight * mean_s iad_s`` (``per_stage``; otherwise the
    last stage only). Without any same-image partner the term is the
    constant ``loss_weight``. The released default weight is 0
    (``div_loc`` off, no training command published): the paper's weight is
    unknown, set it in the config.

    Args:
        loss_weight (float): Weight (released ``div_loc``).
        per_stage (bool): Average over all stages (released) or use the
            last stage only.
    """

    def __init__(self, loss_weight: float = 1.0,
                 per_stage: bool = True) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.per_stage = per_stage

    def stage_terms(self, maps: Tensor, partner_maps: Tensor,
                    proposals: Tensor, mark: Tensor,
                    image_size: Sequence[int]) -> Dict[str, Tensor]:
        """``max``, ``max_partner``, ``onehot``, ``onehot_partner``
        ``[B, S, M]`` and ``iad`` ``[S]``."""
        grid = proposals.shape[-2:]
        props = proposals.to(maps.dtype)[:, None]
        out = {}
        for name, value in (('', maps), ('_partner', partner_maps)):
            prob = released_proposal_response(value, image_size, grid)
            out['max' + name] = (prob[:, :, None] * props).flatten(3).amax(-1)
            out['onehot' + name] = straight_through_onehot(out['max' + name])
        mark = mark.to(maps.dtype)[:, None]
        dist = (out['onehot'] - out['onehot_partner']).abs().sum(-1)
        out['iad'] = 1 - (dist * mark).sum(0) / (2 * mark.sum(0) + 1e-4)
        return out

    def forward(self, maps: Tensor, partner_maps: Tensor, proposals: Tensor,
                mark: Tensor, image_size: Sequence[int]) -> Dict[str, Tensor]:
        """``loss_iad``.

        Args:
            maps (Tensor): ``[B, S, h, w]`` raw responses of each image to
                its own expression, one per stage.
            partner_maps (Tensor): ``[B, S, h, w]`` the same image's
                responses to its partner expression.
            proposals (Tensor): ``[B, M, g, g]`` binary proposals.
            mark (Tensor): ``[B]`` bool, the partner is of the same image.
            image_size (tuple): ``(H, W)`` of the network input.
        """
        if not self.per_stage:
            maps, partner_maps = maps[:, -1:], partner_maps[:, -1:]
        iad = self.stage_terms(maps, partner_maps, proposals, mark,
                               image_size)['iad']
        return dict(loss_iad=self.loss_weight * iad.mean())
