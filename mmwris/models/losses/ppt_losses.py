"""PPT's weak point-prompt objectives (docs/methods/ppt.md).

Shapes: B images, K points of one kind, ``h x w`` the head's grid. A heat
map is a probability over the grid (softmax), a point its soft-argmax.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmwris.registry import MODELS
from .calibration_loss import CalibrationLoss


@MODELS.register_module()
class PPTMaskCalibrationLoss(CalibrationLoss):
    """Mask-level CLIP calibration: TRIS's :class:`CalibrationLoss` on
    SAM's mask instead of the response map.

    ``fg = sigmoid(up(SAM mask logits)) * I`` is scored by the frozen CLIP
    against the own expression (pulled up) and the same-image negative
    expressions (pushed down); gradients reach the point coordinates
    through SAM. Samples without negatives are left out of the negative
    term (as in :class:`CalibrationLoss`). The keys are
    ``loss_mcal_pos`` / ``loss_mcal_neg``, so it can sit beside a
    response-level calibration.
    """

    def forward(self, masks: Tensor, images: Tensor, texts: List[str],
                neg_texts: Sequence[Sequence[str]]) -> Dict[str, Tensor]:
        losses = super().forward(masks, images, texts, neg_texts)
        return dict(loss_mcal_pos=losses['loss_cal_pos'],
                    loss_mcal_neg=losses['loss_cal_neg'])


def heat_mass(heat: Tensor, target: Tensor) -> Tensor:
    """``sum_p heat[b, k, p] * target[b, p]``: ``[B, K]`` (heat
    ``[B, K, h, w]``, target ``[B, h, w]`` in [0, 1])."""
    return (heat * target[:, None]).flatten(2).sum(-1)


@MODELS.register_module()
class PPTNegativePointLoss(nn.Module):
    """Negative points go where the referent is *not*, but something is.

    The target of image b is ``T_b = max(O_b, L_b)``:

    * ``O_b``: where the other expressions of the same image respond (their
      share of the joint softmax over background, own and other texts);
    * ``L_b``: where the positive SAM mask leaks, ``m_b * (1 - S_b)`` with
      ``m_b`` the (detached) mask probability and ``S_b`` the own share.

    ``loss = w * mean_{b, k} [(1 - <H_bk, T_b> / max T_b) + <H_bk, S_b>]``
    (every target detached; only the heat maps get gradients).

    Fallbacks: an image without negative expressions has no ``O_b`` (the
    leak alone is its target); an image whose target peaks below
    ``min_target`` is left out of the mean (the loss is 0 when no image
    is left).

    Args:
        loss_weight (float): ``w``.
        min_target (float): Images whose ``max T_b`` is below it are skipped.
    """

    def __init__(self, loss_weight: float = 1.0,
                 min_target: float = 0.05) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.min_target = min_target

    def forward(self, heat: Tensor, own_share: Tensor,
                other_share: Optional[Tensor],
                leak: Optional[Tensor]) -> Dict[str, Tensor]:
        """Args:
            heat (Tensor): ``[B, K, h, w]`` negative heat maps.
            own_share (Tensor): ``[B, h, w]``.
            other_share (Tensor, optional): ``[B, h, w]`` (zeros for an
                image without negatives).
            leak (Tensor, optional): ``[B, h, w]``.
        """
        zero = heat.sum() * 0
        if heat.shape[1] == 0:
            return dict(loss_neg_point=zero)
        target = torch.zeros_like(own_share)
        for part in (other_share, leak):
            if part is not None:
                target = torch.maximum(target, part.detach())
        peak = target.flatten(1).max(-1).values
        keep = peak >= self.min_target
        if not keep.any():
            return dict(loss_neg_point=zero)
        target = target / peak.clamp_min(1e-6)[:, None, None]
        per_point = (1 - heat_mass(heat, target)) + heat_mass(
            heat, own_share.detach())
        return dict(loss_neg_point=self.loss_weight * per_point[keep].mean())


@MODELS.register_module()
class PPTSpreadLoss(nn.Module):
    """Positive points on the referent, apart from each other.

    ``loss = w_on * mean_{b,k} (1 - <H_bk, S_b> / max S_b)
           + w_apart * mean_b mean_{k != l} exp(-|p_bk - p_bl|^2 / (2 s^2))``

    with ``S_b`` the (detached) own share of the response and ``p`` the
    normalised points. One positive point has no repulsion term.

    Args:
        loss_weight (float): ``w_on``.
        repulsion_weight (float): ``w_apart``.
        sigma (float): ``s``, in normalised image units.
    """

    def __init__(self, loss_weight: float = 1.0,
                 repulsion_weight: float = 1.0,
                 sigma: float = 0.08) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.repulsion_weight = repulsion_weight
        self.sigma = sigma

    def forward(self, heat: Tensor, points: Tensor,
                own_share: Tensor) -> Dict[str, Tensor]:
        """``heat [B, K, h, w]`` and ``points [B, K, 2]`` of the positive
        points; ``own_share [B, h, w]``."""
        share = own_share.detach()
        share = share / share.flatten(1).max(-1).values.clamp_min(
            1e-6)[:, None, None]
        on = (1 - heat_mass(heat, share)).mean()
        num = points.shape[1]
        if num > 1:
            dist2 = (points[:, :, None] - points[:, None]).pow(2).sum(-1)
            off = ~torch.eye(num, dtype=torch.bool, device=points.device)
            apart = torch.exp(-dist2 / (2 * self.sigma**2))[:, off].mean()
        else:
            apart = points.sum() * 0
        return dict(loss_spread_on=self.loss_weight * on,
                    loss_spread_apart=self.repulsion_weight * apart)


@MODELS.register_module()
class PPTPointSelectionLoss(nn.Module):
    """Which object the positive point prompts: a global, mask-level
    target for the positive heat maps.

    The gradient of SAM's mask with respect to a point is local: it can
    slide a point within an object, not move it to another one. This term
    gives the heat map a global target instead. Per image, the
    ``num_candidates`` cells with the largest own share are candidates;
    each one alone prompts SAM (no gradient); the frozen CLIP scores every
    candidate mask ``m_c * I``::

        s_c = <f_c, p> - max_k <f_c, n_k>      (without negatives: <f_c, p>)
        s_c += response_weight * mean_{m_c} S   (the own share in the mask)

    and the positive heat maps learn the best candidate ``c*`` by
    cross-entropy: ``loss = w * mean_{b, k} -log H_bk(c*)``.

    Args:
        scorer (dict): ``FrozenCLIPScorer`` config.
        num_candidates (int): Candidate cells per image.
        response_weight (float): Weight of the own share in ``s_c``.
        loss_weight (float): ``w``.
    """

    def __init__(self, scorer: dict, num_candidates: int = 4,
                 response_weight: float = 0.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        scorer = dict(scorer)
        scorer.setdefault('type', 'FrozenCLIPScorer')
        self.scorer = MODELS.build(scorer)
        self.num_candidates = num_candidates
        self.response_weight = response_weight
        self.loss_weight = loss_weight

    @torch.no_grad()
    def targets(self, own_share: Tensor, sam, embeddings: Tensor,
                images: Tensor, texts: List[str],
                neg_texts: Sequence[Sequence[str]]) -> Tensor:
        """The best candidate cell of each image ``[B]`` (flat index)."""
        batch, height, width = own_share.shape
        num = min(self.num_candidates, height * width)
        cells = own_share.flatten(1).topk(num, -1).indices  # [B, M]
        points = torch.stack([
            ((cells % width).float() + 0.5) / width,
            (torch.div(cells, width, rounding_mode='floor').float() + 0.5) /
            height
        ], -1)  # [B, M, 2]
        flat_points = points.reshape(batch * num, 1, 2)
        masks = sam.predict_masks(
            embeddings.repeat_interleave(num, 0), flat_points,
            flat_points.new_ones(batch * num, 1))['masks']
        masks = torch.nn.functional.interpolate(
            masks, size=images.shape[-2:], mode='bilinear',
            align_corners=False).sigmoid()
        fg = masks * images.repeat_interleave(num, 0)
        feats = self.scorer.encode_image(fg).view(batch, num, -1)
        scores = (feats * self.scorer.encode_text(texts)[:, None]).sum(-1)
        for b, negs in enumerate(neg_texts):
            if len(negs):
                neg = self.scorer.encode_text(list(negs))  # [K, D]
                scores[b] -= (feats[b] @ neg.T).max(-1).values
        if self.response_weight:
            small = torch.nn.functional.interpolate(
                masks, size=(height, width), mode='bilinear',
                align_corners=False).view(batch, num, -1)
            inside = (small * own_share.flatten(1)[:, None]).sum(-1) / \
                small.sum(-1).clamp_min(1e-6)
            scores = scores + self.response_weight * inside
        best = scores.argmax(-1)
        return cells[torch.arange(batch, device=cells.device), best]

    def forward(self, heat: Tensor, own_share: Tensor, sam,
                embeddings: Tensor, images: Tensor, texts: List[str],
                neg_texts: Sequence[Sequence[str]]) -> Dict[str, Tensor]:
        """``heat [B, K, h, w]`` of the positive points; the rest as
        :meth:`targets`."""
        target = self.targets(own_share.detach(), sam, embeddings, images,
                              texts, neg_texts)
        flat = heat.flatten(2)  # [B, K, hw]
        index = target[:, None, None].expand(-1, flat.shape[1], 1)
        log_p = torch.log(flat.gather(2, index).clamp_min(1e-8))
        return dict(loss_point_select=-self.loss_weight * log_p.mean())
