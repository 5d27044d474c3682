"""MagNet's (Mask Grounding, CVPR'24) two-way early fusion, as released.

Shapes: B images, ``C`` visual channels of a stage on an ``H x W`` grid,
``N`` word tokens of width ``Lw`` (the text encoder's width, 768 for BERT
base; taken from the config), ``m [B, N]`` the 0/1 token mask.

* :class:`MagNetPixelWordAttention` -- pixels attend over the words
  (LAVT's PWAM with a Linear + LayerNorm query and output projection):
  ``r = GELU(P(GELU(Vis(x)) * LN(O(softmax(LN(Q(x)) K(l)^T / sqrt(C) +
  1e4 m - 1e4) V(l)))))`` with ``K(l)``, ``V(l)`` zeroed on padding.
* :class:`MagNetWordPixelAttention` -- words attend over the pixels (the
  language side). ``mask_mode='released'`` reproduces the released
  arithmetic: the queries are *multiplied* by the extended mask ``E``
  (0 on tokens, -10000 on padding) and ``1e4 E - 1e4`` is added as a
  per-row constant, so real words attend uniformly and only padding
  positions look at the image; keys / values are instance-normalised over
  the pixels, the output over the token positions. ``'standard'`` uses
  the plain queries (every word attends; padding rows are computed but
  carry no meaning).
* :class:`MagNetImageFusion` -- one Swin stage's fusion: the gated PWAM
  residual (``x + tanh-gate(r) * r``, continued to the next stage) and the
  multi-scale alignment branch (pool sizes 1, 2, 3, 6 -> 1x1 convs -> a
  PWAM at ``C / 4`` each -> bilinear up, ``align_corners=True``) mixed with
  ``r`` by an MLP into the stage's decoder feature.
* :class:`MagNetTextFusion` -- one BERT block's fusion: ``l + tanh-gate(r)
  * r`` with ``r`` from :class:`MagNetWordPixelAttention`.

The tanh gates are zero-initialised (the residuals start switched off).
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS

MASK_MODES = ('released', 'standard')


def tanh_gate(channels: int, activation: nn.Module) -> nn.Sequential:
    """``tanh(W2 act(W1 r))`` (bias-free), both matrices zero-initialised."""
    gate = nn.Sequential(nn.Linear(channels, channels, bias=False),
                         activation,
                         nn.Linear(channels, channels, bias=False),
                         nn.Tanh())
    nn.init.zeros_(gate[0].weight)
    nn.init.zeros_(gate[2].weight)
    return gate


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv1d:
    """A 1x1 ``Conv1d`` over ``[B, C, S]`` (the released projections)."""
    return nn.Conv1d(in_channels, out_channels, 1)


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channels of ``[B, C, H, W]`` (eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


@MODELS.register_module()
class MagNetPixelWordAttention(nn.Module):
    """Pixels attend over words (the image-side PWAM, without its gate).

    Args:
        channels (int): ``C``, of the pixels, the attention and the output.
        text_channels (int): ``Lw``.
        num_heads (int): Attention heads (released: 1). The scale is
            ``C^-0.5`` whatever the heads (released).
        dropout (float): Dropout after ``Vis`` and ``P``.
    """

    def __init__(self, channels: int, text_channels: int,
                 num_heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f'channels ({channels}) must be divisible by '
                             f'num_heads ({num_heads}).')
        self.channels, self.num_heads = channels, num_heads
        self.vis_proj = nn.Sequential(conv1x1(channels, channels),
                                      nn.GELU(), nn.Dropout(dropout))
        self.query = nn.Sequential(nn.Linear(channels, channels),
                                   nn.LayerNorm(channels))
        self.key = nn.Sequential(conv1x1(text_channels, channels))
        self.value = nn.Sequential(conv1x1(text_channels, channels))
        self.out = nn.Sequential(nn.Linear(channels, channels),
                                 nn.LayerNorm(channels))
        self.mm_proj = nn.Sequential(conv1x1(channels, channels),
                                     nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: Tensor, words: Tensor, mask: Tensor) -> Tensor:
        """``x [B, S, C]``, ``words [B, N, Lw]``, ``mask [B, N]`` ->
        ``r [B, S, C]`` (computed channels-first, in the released order
        of operations)."""
        batch, pixels, channels = x.shape
        heads, dim = self.num_heads, channels // self.num_heads
        mask = mask.to(x.dtype)[:, None, :]  # [B, 1, N]
        words = words.transpose(1, 2)  # [B, Lw, N]
        vis = self.vis_proj(x.transpose(1, 2))  # [B, C, S]
        query = self.query(x).reshape(batch, pixels, heads,
                                      dim).transpose(1, 2)
        key = (self.key(words) * mask).reshape(batch, heads, dim, -1)
        value = (self.value(words) * mask).reshape(batch, heads, dim, -1)
        sim = channels**-0.5 * (query @ key)
        sim = (sim + (1e4 * mask[:, None] - 1e4)).softmax(-1)
        out = (sim @ value.transpose(2, 3)).transpose(1, 2).contiguous()
        out = self.out(out.reshape(batch, pixels, channels))
        return self.mm_proj(vis * out.transpose(1, 2)).transpose(1, 2)


@MODELS.register_module()
class MagNetWordPixelAttention(nn.Module):
    """Words attend over pixels (the language-side PWAM, without its gate).

    Args:
        text_channels (int): ``Lw``, of the words, the attention and the
            output.
        visual_channels (int): ``C`` of the stage's pixels.
        num_heads (int): Attention heads (released: 1).
        dropout (float): Dropout after ``Vis`` and ``P``.
        mask_mode (str): ``'released'`` or ``'standard'`` (see the module
            docstring).
    """

    def __init__(self, text_channels: int, visual_channels: int,
                 num_heads: int = 1, dropout: float = 0.0,
                 mask_mode: str = 'released') -> None:
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise ValueError(f'mask_mode must be one of {MASK_MODES}, got '
                             f'{mask_mode!r}')
        if text_channels % num_heads:
            raise ValueError(f'text_channels ({text_channels}) must be '
                             f'divisible by num_heads ({num_heads}).')
        self.channels, self.num_heads = text_channels, num_heads
        self.mask_mode = mask_mode
        self.vis_proj = nn.Sequential(nn.Linear(text_channels, text_channels),
                                      nn.GELU(), nn.Dropout(dropout))
        self.query = nn.Sequential(conv1x1(text_channels, text_channels))
        self.key = nn.Sequential(conv1x1(visual_channels, text_channels))
        self.value = nn.Sequential(
            conv1x1(visual_channels, text_channels))
        self.out = nn.Sequential(conv1x1(text_channels, text_channels))
        self.mm_proj = nn.Sequential(
            conv1x1(text_channels, text_channels), nn.GELU(),
            nn.Dropout(dropout))

    def forward(self, words: Tensor, x: Tensor, mask: Tensor) -> Tensor:
        """``words [B, N, Lw]``, ``x [B, S, C]``, ``mask [B, N]`` ->
        ``r [B, N, Lw]`` (released order of operations)."""
        batch, tokens, channels = words.shape
        heads, dim = self.num_heads, channels // self.num_heads
        vis = self.vis_proj(words)  # [B, N, Lw]
        query = self.query(words.transpose(1, 2))  # [B, Lw, N]
        if self.mask_mode == 'released':
            extended = (1.0 - mask.to(words.dtype)) * -10000.0
            query = query * extended[:, None, :]
        pixels = x.transpose(1, 2)  # [B, C, S]
        key = F.instance_norm(self.key(pixels))
        value = F.instance_norm(self.value(pixels))
        query = query.transpose(1, 2).reshape(batch, tokens, heads,
                                              dim).transpose(1, 2)
        key = key.reshape(batch, heads, dim, -1)
        value = value.reshape(batch, heads, dim, -1)
        sim = channels**-0.5 * (query @ key)
        if self.mask_mode == 'released':
            sim = sim + (1e4 * extended[:, None, :, None] - 1e4)
        out = (sim.softmax(-1) @ value.transpose(2, 3)).transpose(
            1, 2).contiguous().reshape(batch, tokens, channels)
        out = F.instance_norm(self.out(out.transpose(1, 2)))
        return self.mm_proj(vis.transpose(1, 2) * out).transpose(1, 2)


@MODELS.register_module()
class MagNetImageFusion(nn.Module):
    """The fusion after one Swin stage's blocks (before patch merging).

    Args:
        channels (int): ``C`` of the stage.
        text_channels (int): ``Lw``.
        pool_sizes (Sequence[int]): Pooled grids of the alignment branch
            (released: 1, 2, 3, 6); empty disables the branch (the decoder
            feature is then the mixer of ``r`` alone).
        reduction (int): Branch width ``C / reduction`` (released: 4).
        num_heads (int): PWAM heads (released: 1).
        dropout (float): PWAM dropout.
    """

    def __init__(self, channels: int, text_channels: int,
                 pool_sizes: Sequence[int] = (1, 2, 3, 6),
                 reduction: int = 4, num_heads: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if channels % reduction:
            raise ValueError(f'channels ({channels}) must be divisible by '
                             f'reduction ({reduction}).')
        self.pool_sizes = tuple(int(p) for p in pool_sizes)
        branch = channels // reduction
        self.branch_channels = branch
        self.pwam = MagNetPixelWordAttention(channels, text_channels,
                                             num_heads, dropout)
        self.gate = tanh_gate(channels, nn.GELU())
        self.pyramids = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(p),
                          nn.Conv2d(channels, channels * 4, 1, bias=False),
                          ChannelsFirstLayerNorm(channels * 4),
                          nn.Conv2d(channels * 4, channels, 1, bias=False),
                          nn.GELU(),
                          nn.Conv2d(channels, branch, 1, bias=False))
            for p in self.pool_sizes)
        self.branch_pwams = nn.ModuleList(
            MagNetPixelWordAttention(branch, text_channels, num_heads,
                                     dropout) for _ in self.pool_sizes)
        mixed = channels + branch * len(self.pool_sizes)
        self.mixer = nn.Sequential(nn.Linear(mixed, channels),
                                   nn.LayerNorm(channels),
                                   nn.Linear(channels, channels), nn.GELU())

    def forward(self, visual: Tensor, words: Tensor,
                mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Fuse the words into a stage.

        Args:
            visual (Tensor): ``[B, C, H, W]``, the stage's block output.
            words (Tensor): ``[B, N, Lw]``.
            mask (Tensor): ``[B, N]``, 1/True on real tokens.

        Returns:
            tuple[Tensor, Tensor]: The decoder feature ``[B, C, H, W]``
            (the mixer output) and the gated map ``[B, C, H, W]`` that the
            next stage merges.
        """
        batch, channels, height, width = visual.shape
        # Token-major memory, as released (the same arithmetic bit for bit).
        x = visual.flatten(2).transpose(1, 2).contiguous()
        visual = x.transpose(1, 2).view(batch, channels, height, width)
        branches = []
        for pool, pyramid, pwam in zip(self.pool_sizes, self.pyramids,
                                       self.branch_pwams):
            pooled = pyramid(visual).flatten(2).transpose(1, 2)
            fused = pwam(pooled, words, mask).transpose(1, 2).reshape(
                batch, self.branch_channels, pool, pool)
            branches.append(F.interpolate(
                fused, (height, width), mode='bilinear',
                align_corners=True).flatten(2).transpose(1, 2))
        residual = self.pwam(x, words, mask)
        gated = x + self.gate(residual) * residual
        feature = self.mixer(torch.cat(branches + [residual], dim=2))

        def as_map(tokens):
            return tokens.transpose(1, 2).reshape(batch, channels, height,
                                                  width).contiguous()

        return as_map(feature), as_map(gated)


@MODELS.register_module()
class MagNetTextFusion(nn.Module):
    """The fusion after one BERT block: words gather the stage's pixels.

    Args:
        text_channels (int): ``Lw``.
        visual_channels (int): ``C`` of the stage.
        num_heads (int): Attention heads (released: 1).
        dropout (float): PWAM dropout.
        mask_mode (str): See :class:`MagNetWordPixelAttention`.
    """

    def __init__(self, text_channels: int, visual_channels: int,
                 num_heads: int = 1, dropout: float = 0.0,
                 mask_mode: str = 'released') -> None:
        super().__init__()
        self.pwam = MagNetWordPixelAttention(text_channels, visual_channels,
                                             num_heads, dropout, mask_mode)
        self.gate = tanh_gate(text_channels, nn.ReLU())

    def forward(self, words: Tensor, visual: Tensor,
                mask: Tensor) -> Tensor:
        """``words [B, N, Lw]``, ``visual [B, C, H, W]`` (the stage's
        block output), ``mask [B, N]`` -> the next block's words."""
        pixels = visual.flatten(2).transpose(1, 2).contiguous()
        residual = self.pwam(words, pixels, mask)
        return words + self.gate(residual) * residual
