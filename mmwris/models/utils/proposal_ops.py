"""Functional helpers that compare response maps with mask proposals.

Shared by PCNet's losses (:class:`RegionShrinkingLoss`,
:class:`InstanceDisambiguationLoss`) and its proposal-based evaluation.
Shapes: ``M`` proposals per image (padded, ``valid [.., M]`` marks the real
ones), maps and proposals on one grid ``h x w``.
"""
import torch
from torch import Tensor

NORMALIZE_MODES = ('sigmoid', 'minmax')


def normalize_response(maps: Tensor, mode: str = 'sigmoid',
                       eps: float = 1e-6) -> Tensor:
    """Turn raw response maps ``[..., h, w]`` into probabilities in [0, 1].

    ``'sigmoid'``: ``sigmoid(R)``; ``'minmax'``: each map rescaled as
    ``(R - min R) / (max R - min R + eps)`` (a constant map gives 0).
    """
    if mode == 'sigmoid':
        return maps.sigmoid()
    if mode == 'minmax':
        low = maps.amin(dim=(-2, -1), keepdim=True)
        high = maps.amax(dim=(-2, -1), keepdim=True)
        return (maps - low) / (high - low + eps)
    raise ValueError(
        f'normalize must be one of {NORMALIZE_MODES}, got {mode!r}')


def soft_iou(prob: Tensor, masks: Tensor, eps: float = 1e-6) -> Tensor:
    """Soft IoU of broadcastable ``[..., h, w]`` maps -> ``[...]``.

    ``IoU = sum(p * m) / (sum(p) + sum(m) - sum(p * m) + eps)``.
    """
    inter = (prob * masks).sum(dim=(-2, -1))
    union = prob.sum(dim=(-2, -1)) + masks.sum(dim=(-2, -1)) - inter
    return inter / (union + eps)


def proposal_alignment(prob: Tensor, proposals: Tensor,
                       eps: float = 1e-6) -> Tensor:
    """Soft IoU of every map with every proposal of its image.

    Args:
        prob (Tensor): ``[B, S, h, w]`` maps in [0, 1].
        proposals (Tensor): ``[B, M, h, w]`` soft masks in [0, 1].

    Returns:
        Tensor: ``[B, S, M]``, ``a[b, s, j] = soft_iou(prob[b, s],
        proposals[b, j])`` (padded proposals included: mask them with
        :func:`masked_argmax` or ``valid``).
    """
    if prob.dim() != 4 or proposals.dim() != 4:
        raise ValueError('proposal_alignment expects prob [B, S, h, w] and '
                         f'proposals [B, M, h, w], got {tuple(prob.shape)} '
                         f'and {tuple(proposals.shape)}')
    proposals = proposals.to(prob.dtype)
    flat_p = prob.flatten(2)
    flat_m = proposals.flatten(2)
    inter = torch.bmm(flat_p, flat_m.transpose(1, 2))
    union = flat_p.sum(-1)[:, :, None] + flat_m.sum(-1)[:, None, :] - inter
    return inter / (union + eps)


def masked_argmax(scores: Tensor, valid: Tensor) -> Tensor:
    """Arg-max over the valid entries of the last dim.

    Args:
        scores (Tensor): ``[..., M]``.
        valid (Tensor): ``[..., M]`` bool.

    Returns:
        Tensor: ``[...]`` long, ``-1`` where no entry is valid.
    """
    valid = valid.bool()
    if scores.shape[-1] == 0:
        return torch.full(scores.shape[:-1], -1, dtype=torch.long,
                          device=scores.device)
    index = scores.detach().masked_fill(~valid, float('-inf')).argmax(-1)
    return torch.where(valid.any(-1), index, torch.full_like(index, -1))


@torch.no_grad()
def select_peak_proposal(response: Tensor, proposals: Tensor,
                         valid: Tensor) -> Tensor:
    """PCNet's proposal choice at evaluation ("segmentor" mode).

    The chosen proposal contains the response peak (its arg-max pixel);
    among several (SAM's nested part/object/whole masks) the one with the
    highest soft IoU with the min-max-normalised response wins; when no
    valid proposal contains the peak, the valid one with the highest soft
    IoU is taken.

    Args:
        response (Tensor): ``[B, H, W]`` raw response maps.
        proposals (Tensor): ``[B, M, H, W]`` binary masks.
        valid (Tensor): ``[B, M]`` bool.

    Returns:
        Tensor: ``[B]`` long proposal indices, ``-1`` for an image without
        valid proposals.
    """
    if (response.dim() != 3 or proposals.dim() != 4
            or proposals.shape[0] != response.shape[0]
            or proposals.shape[-2:] != response.shape[-2:]
            or tuple(valid.shape) != tuple(proposals.shape[:2])):
        raise ValueError(
            'select_peak_proposal expects response [B, H, W], proposals '
            f'[B, M, H, W] and valid [B, M], got {tuple(response.shape)}, '
            f'{tuple(proposals.shape)} and {tuple(valid.shape)}')
    valid = valid.bool()
    num_images = response.shape[0]
    peak = response.flatten(1).argmax(-1)
    flat = proposals.flatten(2)
    at_peak = flat.gather(
        2, peak.view(num_images, 1, 1).expand(-1, flat.shape[1], 1))[..., 0]
    contains = (at_peak > 0.5) & valid

    prob = normalize_response(response.float(), 'minmax')
    iou = soft_iou(prob[:, None], proposals.float())
    inside = masked_argmax(iou, contains)
    fallback = masked_argmax(iou, valid)
    return torch.where(contains.any(-1), inside, fallback)
