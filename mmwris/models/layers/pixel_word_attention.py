"""Pixel-word attention fusion (LAVT's PWAM with its language gate).

Shapes: B images, ``Cv`` visual channels, ``h x w`` the feature grid, L word
tokens of width ``Ct``, C the attention width.
"""
import math

import torch
import torch.nn as nn
from torch import Tensor

from mmwris.registry import MODELS
from .conditional_referring import masked_softmax


@MODELS.register_module()
class PixelWordAttention(nn.Module):
    """Fuse an expression's words into a visual map, pixel by pixel.

    Every pixel attends over the expression's *valid* word tokens (padding
    is masked out of the softmax and its weight is exactly 0), the gathered
    language feature is multiplied element-wise with the projected pixel
    feature (LAVT's PWAM), and the product is added back to the visual map
    through a tanh gate (LAVT's language gate)::

        A   = softmax_L(Q(V) K(W)^T / sqrt(C / heads))   (per head, masked)
        L_p = O(A Val(W))                                 [B, C, h, w]
        M   = P(Vis(V) * L_p)                             [B, Cv, h, w]
        V'  = V + tanh(G(M)) * M

    ``Q``: 1x1 conv + InstanceNorm; ``K``, ``Val``: linear; ``O``: 1x1 conv +
    InstanceNorm; ``Vis``: 1x1 conv + GELU; ``P``: 1x1 conv (C -> Cv) + GELU;
    ``G``: 1x1 conv, ReLU, 1x1 conv (both bias-free, Cv -> Cv).

    Args:
        visual_channels (int): ``Cv``, kept by the output.
        text_channels (int): ``Ct``, width of the word tokens.
        channels (int): Attention width ``C`` (divisible by ``num_heads``).
        num_heads (int): Attention heads (LAVT uses 1).
        dropout (float): Dropout after ``Vis`` and ``P``.
    """

    def __init__(self,
                 visual_channels: int,
                 text_channels: int,
                 channels: int,
                 num_heads: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f'channels ({channels}) must be divisible by '
                             f'num_heads ({num_heads}).')
        self.visual_channels = visual_channels
        self.text_channels = text_channels
        self.channels = channels
        self.num_heads = num_heads
        self.query = nn.Sequential(
            nn.Conv2d(visual_channels, channels, 1),
            nn.InstanceNorm2d(channels, affine=True))
        self.key = nn.Linear(text_channels, channels)
        self.value = nn.Linear(text_channels, channels)
        self.out = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.InstanceNorm2d(channels, affine=True))
        self.vis_proj = nn.Sequential(
            nn.Conv2d(visual_channels, channels, 1), nn.GELU(),
            nn.Dropout(dropout))
        self.mm_proj = nn.Sequential(
            nn.Conv2d(channels, visual_channels, 1), nn.GELU(),
            nn.Dropout(dropout))
        self.gate = nn.Sequential(
            nn.Conv2d(visual_channels, visual_channels, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(visual_channels, visual_channels, 1, bias=False),
            nn.Tanh())

    def attend(self, visual: Tensor, words: Tensor, mask: Tensor) -> Tensor:
        """The language feature gathered by every pixel, ``[B, C, h, w]``.

        The attention weights of padded tokens are exactly 0 (all 0 for an
        expression without any valid token).
        """
        batch, _, height, width = visual.shape
        heads, dim = self.num_heads, self.channels // self.num_heads
        query = self.query(visual).flatten(2).reshape(
            batch, heads, dim, height * width).transpose(2, 3)
        key = self.key(words).reshape(batch, -1, heads, dim)
        value = self.value(words).reshape(batch, -1, heads, dim)
        key, value = key.permute(0, 2, 3, 1), value.transpose(1, 2)
        logits = query @ key / math.sqrt(dim)
        valid = mask[:, None, None, :].to(torch.bool)
        attn = masked_softmax(logits, valid)
        gathered = (attn @ value).transpose(2, 3).reshape(
            batch, self.channels, height, width)
        return self.out(gathered)

    def forward(self, visual: Tensor, words: Tensor, mask: Tensor) -> Tensor:
        """Fuse the words into the visual map.

        Args:
            visual (Tensor): ``[B, Cv, h, w]``.
            words (Tensor): ``[B, L, Ct]`` word tokens of each image's
                expression.
            mask (Tensor): ``[B, L]``, True at valid (non-padding) tokens.

        Returns:
            Tensor: ``[B, Cv, h, w]``.
        """
        if words.shape[:2] != mask.shape or len(words) != len(visual):
            raise ValueError(
                f'Expected visual [B, C, h, w], words [B, L, C] and mask '
                f'[B, L] with one B, got {tuple(visual.shape)}, '
                f'{tuple(words.shape)} and {tuple(mask.shape)}.')
        language = self.attend(visual, words, mask)
        fused = self.mm_proj(self.vis_proj(visual) * language)
        return visual + self.gate(fused) * fused
