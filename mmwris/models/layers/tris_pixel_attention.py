"""The pixel attention of the released TRIS step-2 network (LAVT-style,
single head, no language gate).

Shapes: B images, ``Cv`` visual channels, ``h x w`` the feature grid, L word
tokens of width ``Ct``, C the attention width (``Cv`` in the released code).
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from .conditional_referring import masked_softmax


@MODELS.register_module()
class TRISPixelAttention(nn.Module):
    """Every pixel gathers the words it attends to; the result modulates a
    projection of the pixel (``fawnliu/TRIS`` ``model/attn.py``)::

        A   = softmax_L(IN(W_q V) (W_k W)^T / sqrt(C))       [B, hw, L]
        G   = IN(W_w (A (W_v W)))                             [B, C, h, w]
        out = ReLU(W_o (ReLU(W_m V) * G))                     [B, Cv, h, w]
        V'  = V + out            (``residual=True``, the released step 2)

    ``W_k``, ``W_v``: 1x1 Conv1d (Ct -> C; Conv1d keeps the released
    weight shapes); ``W_q``, ``W_m``: 1x1 conv Cv -> C; ``W_w``: C -> C;
    ``W_o``: C -> Cv; ``IN``: ``InstanceNorm2d(affine=True)``.

    Args:
        visual_channels (int): ``Cv``.
        text_channels (int): ``Ct``.
        channels (int, optional): ``C``; None = ``Cv`` (released).
        residual (bool): Add the input map (the released segmentor adds it
            after the layer).
        use_word_mask (bool): Mask padded tokens out of the softmax. The
            released code attends over all ``L`` positions (padding and,
            for long expressions, the tokens after a cut EOT): False.
    """

    def __init__(self,
                 visual_channels: int,
                 text_channels: int,
                 channels: Optional[int] = None,
                 residual: bool = True,
                 use_word_mask: bool = False) -> None:
        super().__init__()
        channels = channels or visual_channels
        self.visual_channels = visual_channels
        self.text_channels = text_channels
        self.channels = channels
        self.residual = residual
        self.use_word_mask = use_word_mask
        self.w_k = nn.Conv1d(text_channels, channels, 1)
        self.w_v = nn.Conv1d(text_channels, channels, 1)
        self.w_q = nn.Conv2d(visual_channels, channels, 1)
        self.w_m = nn.Conv2d(visual_channels, channels, 1)
        self.w_w = nn.Conv2d(channels, channels, 1)
        self.w_o = nn.Conv2d(channels, visual_channels, 1)
        self.ins_q = nn.InstanceNorm2d(channels, affine=True)
        self.ins_w = nn.InstanceNorm2d(channels, affine=True)

    def forward(self,
                visual: Tensor,
                words: Tensor,
                mask: Optional[Tensor] = None) -> Tensor:
        """Fuse the words into the visual map.

        Args:
            visual (Tensor): ``[B, Cv, h, w]``.
            words (Tensor): ``[B, L, Ct]``.
            mask (Tensor, optional): ``[B, L]``, True at valid tokens; used
                only with ``use_word_mask``.

        Returns:
            Tensor: ``[B, Cv, h, w]``.
        """
        batch, _, height, width = visual.shape
        if words.dim() != 3 or len(words) != batch:
            raise ValueError(
                f'Expected visual [B, C, h, w] and words [B, L, C] with one '
                f'B, got {tuple(visual.shape)} and {tuple(words.shape)}.')
        language = words.transpose(1, 2)
        key, value = self.w_k(language), self.w_v(language)  # [B, C, L]
        query = self.ins_q(self.w_q(visual)).flatten(2).transpose(1, 2)
        logits = query @ key / math.sqrt(self.channels)  # [B, hw, L]
        if self.use_word_mask:
            if mask is None:
                raise ValueError('use_word_mask=True needs the word mask.')
            attn = masked_softmax(logits, mask[:, None, :].to(torch.bool))
        else:
            attn = logits.softmax(dim=2)
        gathered = (attn @ value.transpose(1, 2)).transpose(1, 2).reshape(
            batch, self.channels, height, width)
        gathered = self.ins_w(self.w_w(gathered))
        out = F.relu(self.w_o(F.relu(self.w_m(visual)) * gathered))
        return visual + out if self.residual else out
