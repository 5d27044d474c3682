import random
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS

SHRINK_PAIRS = ('random', 'all')


def released_proposal_response(maps: Tensor, image_size: Sequence[int],
                               grid: Sequence[int]) -> Tensor:
    """The released RaS / IaD map on the proposal grid.

    ``R = relu(bilinear(maps, image_size))`` (``align_corners=False``, the
    response map of the network), ``p = relu(R / (max R + 1e-5) - 1e-5)``
    and a bilinear resize to ``grid`` (``align_corners=True``).

    Args:
        maps (Tensor): ``[B, S, h, w]`` raw low-resolution responses.
        image_size (tuple): ``(H, W)`` of the network input.
        grid (tuple): ``(g_h, g_w)`` of the proposals.

    Returns:
        Tensor: ``[B, S, g_h, g_w]`` in [0, 1].
    """
    response = F.interpolate(maps, size=tuple(image_size), mode='bilinear',
                             align_corners=False).relu()
    peak = response.amax(dim=(-2, -1), keepdim=True)
    prob = F.relu(response / (peak + 1e-5) - 1e-5)
    return F.interpolate(prob, size=tuple(grid), mode='bilinear',
                         align_corners=True)


def released_overlap(prob: Tensor, masks: Tensor) -> Tuple[Tensor, Tensor]:
    """``I = sum(p m)`` and ``U = sum(p) + sum(m) + 1e-5`` of broadcastable
    ``[..., g_h, g_w]`` maps (the released ``dice_loss``; the overlap is
    ``I / (U + 1e-5)``, at most 0.5)."""
    inter = (prob * masks).sum(dim=(-2, -1))
    union = prob.sum(dim=(-2, -1)) + masks.sum(dim=(-2, -1)) + 1e-5
    return inter, union


@MODELS.register_module()
class ReleasedRegionShrinkingLoss(nn.Module):
    """PCNet's Region-aware Shrinking (RaS) as the released code computes
    it (``SAM_shrink_loss`` and the stage loop of ``model_prog_v5.py``).

    Per stage ``s``, with ``p_s`` from :func:`released_proposal_response`
    and the proposals sorted by their precomputed CLIP score (descending):

    - ``left[b] = o(p, top-1)``, ``right[b] = max_{other proposals} o(p, m)``
      with ``o = I / (U + 1e-5)`` (:func:`released_overlap`, not an IoU);
    - images whose binary map ``p > 1e-9`` misses the top-1 proposal are
      left out of ``left_match_s = sum_b left / #kept`` (the right
      confidence ``max o(pb, m) < 1`` always holds);
    - ``anchor = mean_s (1 - left_match_s)``;
    - ``shrink = 1 - (right_match_i - right_match_{i+1})`` for one adjacent
      stage pair ``i`` drawn per step (``shrink_pair='random'``, the
      released ``random.choice``; seeded by ``seed`` and the training
      iteration) or the mean over all pairs (``'all'``); 0 for one stage.

    Nothing is detached. The released defaults weigh both terms by 0
    (``--w2 0 --w3 0``) and publish no training command: the paper's weights
    are unknown, set them in the config.

    Args:
        anchor_weight (float): Weight of ``loss_ras_anchor`` (``--w3``).
        shrink_weight (float): Weight of ``loss_ras_shrink`` (``--w2``).
        shrink_pair (str): ``'random'`` or ``'all'``.
        seed (int): Seed of the pair draw.
    """

    def __init__(self,
                 anchor_weight: float = 1.0,
                 shrink_weight: float = 1.0,
                 shrink_pair: str = 'random',
                 seed: int = 0) -> None:
        super().__init__()
        if shrink_pair not in SHRINK_PAIRS:
            raise ValueError(f'shrink_pair must be one of {SHRINK_PAIRS}, '
                             f'got {shrink_pair!r}')
        self.anchor_weight = anchor_weight
        self.shrink_weight = shrink_weight
        self.shrink_pair = shrink_pair
        self.seed = seed

    def draw_pair(self, num_stages: int, step: int = 0) -> int:
        """The adjacent pair ``i`` of a training step (reproducible from
        ``seed`` and ``step``)."""
        return random.Random(self.seed * 1000003 + step).randrange(
            num_stages - 1)

    def match_terms(self, prob: Tensor, proposals: Tensor,
                    clip_score: Tensor) -> Dict[str, Tensor]:
        """Per-stage overlaps and matches.

        Args:
            prob (Tensor): ``[B, S, g, g]``
                (:func:`released_proposal_response`).
            proposals (Tensor): ``[B, M, g, g]`` binary proposals.
            clip_score (Tensor): ``[B, M]`` CLIP score of each proposal.

        Returns:
            dict: ``left_I``, ``left_U`` ``[B, S, 1]``, ``right_I``,
            ``right_U`` ``[B, S, M - 1]`` (proposals in score order), the
            ``bool_*`` counterparts of the binary map, ``left_match`` and
            ``right_match`` ``[S]``.
        """
        order = torch.argsort(clip_score, dim=1, descending=True)
        rows = torch.arange(proposals.shape[0], device=proposals.device)
        ranked = proposals[rows[:, None], order].to(prob.dtype)
        top, others = ranked[:, None, :1], ranked[:, None, 1:]
        binary = (prob > 1e-9).to(prob.dtype)[:, :, None]
        terms = {}
        for side, masks in (('left', top), ('right', others)):
            terms[f'{side}_I'], terms[f'{side}_U'] = released_overlap(
                prob[:, :, None], masks)
            terms[f'{side}_bool_I'], terms[f'{side}_bool_U'] = \
                released_overlap(binary, masks)
        for side in ('left', 'right'):
            overlap = (terms[f'{side}_I'] /
                       (terms[f'{side}_U'] + 1e-5)).amax(-1)
            confident = (terms[f'{side}_bool_I'] /
                         (terms[f'{side}_bool_U'] + 1e-5)).amax(-1)
            keep = confident > 0 if side == 'left' else confident < 1
            keep = keep.to(prob.dtype)
            terms[f'{side}_match'] = (overlap * keep).sum(0) / (
                keep.sum(0) + 1e-4)
        return terms

    def forward(self,
                maps: Tensor,
                proposals: Tensor,
                clip_score: Tensor,
                image_size: Sequence[int],
                step: int = 0,
                pair: Optional[int] = None) -> Dict[str, Tensor]:
        """``loss_ras_anchor`` and ``loss_ras_shrink``.

        Args:
            maps (Tensor): ``[B, S, h, w]`` raw responses of each image to
                its own expression, one per stage.
            proposals (Tensor): ``[B, M, g, g]`` binary proposals on the
                RaS grid (32x32 released).
            clip_score (Tensor): ``[B, M]``.
            image_size (tuple): ``(H, W)`` of the network input.
            step (int): Training iteration (the pair draw).
            pair (int, optional): Force the shrink pair.
        """
        prob = released_proposal_response(maps, image_size,
                                          proposals.shape[-2:])
        terms = self.match_terms(prob, proposals, clip_score)
        left, right = terms['left_match'], terms['right_match']
        num_stages = maps.shape[1]
        anchor = (1 - left).mean()
        if num_stages == 1:
            shrink = maps.sum() * 0
        elif self.shrink_pair == 'all' and pair is None:
            shrink = (1 - (right[:-1] - right[1:])).mean()
        else:
            if pair is None:
                pair = self.draw_pair(num_stages, step)
            shrink = 1 - (right[pair] - right[pair + 1])
        return dict(loss_ras_anchor=self.anchor_weight * anchor,
                    loss_ras_shrink=self.shrink_weight * shrink)
