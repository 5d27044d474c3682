"""TRIS bilateral prompting and the text-to-image response.

Shapes: B images, T texts, C channels, ``h x w`` the feature grid.
"""
import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def _vision_projection(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 1),
        nn.InstanceNorm2d(channels, affine=True), nn.ReLU(inplace=True))


def _text_projection(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=True))


class BilateralPrompting(nn.Module):
    """TRIS bilateral prompting: pixels attend over texts, texts over pixels.

    With ``V [hw, C]`` an image's pixels and ``L [T, C]`` the texts::

        V' = V + alpha * O_v(softmax(Q_v(V) K_t(L)^T / sqrt(C)) V_t(L))
        L' = L + beta  * O_t(softmax(Q_t(L) K_v(V)^T / sqrt(C)) V_v(V))

    ``Q_v, K_v, V_v``: 1x1 conv + InstanceNorm + ReLU; ``Q_t, K_t, V_t``:
    Linear + ReLU; output projections ``O_v``: 1x1 conv + InstanceNorm,
    ``O_t``: Linear (as in the authors' code). Every text is updated once
    per image (attending over that image's pixels), hence ``L' [B, T, C]``.

    Args:
        channels (int): Common width C of both modalities.
        alpha (float): Residual weight of the visual update.
        beta (float): Residual weight of the text update.
    """

    def __init__(self,
                 channels: int,
                 alpha: float = 0.1,
                 beta: float = 0.1) -> None:
        super().__init__()
        self.channels = channels
        self.alpha = alpha
        self.beta = beta
        self.query_v = _vision_projection(channels)
        self.key_v = _vision_projection(channels)
        self.value_v = _vision_projection(channels)
        self.query_t = _text_projection(channels)
        self.key_t = _text_projection(channels)
        self.value_t = _text_projection(channels)
        self.out_v = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.InstanceNorm2d(channels, affine=True))
        self.out_t = nn.Linear(channels, channels)

    def updates(self, visual: Tensor,
                text: Tensor) -> Tuple[Tensor, Tensor]:
        """The prompt updates before their residual weights.

        Args:
            visual (Tensor): ``[B, C, h, w]``.
            text (Tensor): ``[T, C]`` texts shared by all images, or
                ``[B, T, C]`` per-image text states.

        Returns:
            tuple: ``O_v(...) [B, C, h, w]`` and ``O_t(...) [B, T, C]``.
        """
        batch, channels, height, width = visual.shape
        query_t, key_t, value_t = (
            self.query_t(text), self.key_t(text), self.value_t(text))
        if text.dim() == 2:
            query_t, key_t, value_t = (
                x.unsqueeze(0).expand(batch, -1, -1)
                for x in (query_t, key_t, value_t))
        scale = 1.0 / math.sqrt(channels)
        query_v = self.query_v(visual).flatten(2).transpose(1, 2)
        key_v = self.key_v(visual).flatten(2)
        value_v = self.value_v(visual).flatten(2).transpose(1, 2)

        attn_v = torch.softmax(query_v @ key_t.transpose(1, 2) * scale, -1)
        attn_t = torch.softmax(query_t @ key_v * scale, -1)
        visual_update = (attn_v @ value_t).transpose(1, 2).reshape(
            batch, channels, height, width)
        text_update = attn_t @ value_v
        return self.out_v(visual_update), self.out_t(text_update)

    def forward(self, visual: Tensor, text: Tensor) -> Tuple[Tensor, Tensor]:
        """Update both modalities (arguments as :meth:`updates`).

        Returns:
            tuple: ``visual [B, C, h, w]`` and ``text [B, T, C]``.
        """
        visual_update, text_update = self.updates(visual, text)
        if text.dim() == 2:
            text = text.unsqueeze(0).expand(visual.shape[0], -1, -1)
        return (visual + self.alpha * visual_update,
                text + self.beta * text_update)


def response_maps(visual: Tensor,
                  text: Tensor,
                  logit_scale: Tensor,
                  normalize: bool = True) -> Tensor:
    """Response of every pixel to every text.

    ``R[b, t, p] = exp(tau) * <v_bp / |v_bp|, l_bt / |l_bt|>``, or without
    the normalisation (``normalize=False``, the released TRIS, whose
    features are unit vectors only before the prompt updates)
    ``exp(tau) * <v_bp, l_bt>``.

    Args:
        visual (Tensor): ``[B, C, h, w]``.
        text (Tensor): ``[B, T, C]`` (per image) or ``[T, C]`` (shared).
        logit_scale (Tensor): The log-temperature ``tau`` (scalar).
        normalize (bool): L2-normalise both features first (a cosine).

    Returns:
        Tensor: ``[B, T, h, w]``.
    """
    if normalize:
        visual = F.normalize(visual, dim=1)
        text = F.normalize(text, dim=-1)
    if text.dim() == 2:
        maps = torch.einsum('bchw,tc->bthw', visual, text)
    else:
        maps = torch.einsum('bchw,btc->bthw', visual, text)
    return logit_scale.exp() * maps


def focal_penalty(x: Tensor, power: float = 3.0, eps: float = 0.01) -> Tensor:
    """``(1 - x)^power * log(eps + x)``, elementwise."""
    return (1 - x).pow(power) * torch.log(eps + x)


def image_text_scores(maps: Tensor,
                      focal_power: float = 3.0,
                      focal_eps: float = 0.01,
                      return_parts: bool = False):
    """Image-level logit of every (image, text) pair from its response map.

    One constant background channel of ones is prepended to the ``T``
    response channels of each image and a softmax runs over the ``T + 1``
    channels at every pixel (a *joint* background competing with all the
    batch's texts, as in METHODS.md and the authors' code; not one
    ``[bg, text t]`` pair per text). With ``S`` the raw map and ``M`` its
    softmax share::

        logit[b, t] = mean_hw(S[b, t]) + max_hw(S[b, t])
                      + focal(mean_hw(M[b, t]))

    Args:
        maps (Tensor): ``[B, T, h, w]`` raw responses.
        return_parts (bool): Also return the intermediate terms.

    Returns:
        Tensor: ``[B, T]`` logits; with ``return_parts`` also a dict of
        ``scores_bg [B, T + 1, h, w]`` (background first), ``shares``
        (its softmax), ``mean``, ``max`` and ``focal`` ``[B, T + 1]``.
    """
    background = torch.ones_like(maps[:, :1])
    scores_bg = torch.cat([background, maps], dim=1)
    shares = torch.softmax(scores_bg, dim=1)
    flat = scores_bg.flatten(2)
    parts = dict(
        scores_bg=scores_bg,
        shares=shares,
        mean=flat.mean(-1),
        max=flat.max(-1).values,
        focal=focal_penalty(shares.flatten(2).mean(-1), focal_power,
                            focal_eps))
    logits = (parts['mean'] + parts['max'] + parts['focal'])[:, 1:]
    return (logits, parts) if return_parts else logits
