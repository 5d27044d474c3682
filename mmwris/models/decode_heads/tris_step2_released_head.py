from typing import List, Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor

from mmwris.registry import MODELS
from .step2_head import DeepSupervisionHead

# The released loss of every side: mean BCE over all pixels.
RELEASED_LOSS = dict(type='MaskedBCELoss', reduction='pixel', ignore_index=255)


@MODELS.register_module()
class TRISStep2ReleasedHead(DeepSupervisionHead):
    """The decoder of the released TRIS step-2 network (``fawnliu/TRIS``
    ``model/model_stage2.py``): reduce, then a top-down *sum* decoder with
    one side output per stage.

    With ``c_1..c_4`` the (language-fused) encoder maps, finest first, and
    ``Block`` = 3x3 conv (no bias) + BN + PReLU::

        r_i = Reduce_i(c_i)                                  reduce_channels
        d_4 = up(Fuse_4(r_4), r_3)
        d_i = up(Fuse_i(d_{i+1} + r_i), r_{i-1})  i = 3, 2  decoder_channels
        d_1 = Fuse_1(d_2 + r_1)
        s_i = Conv1x1(Block(d_i))   (no bias, side_channels hidden)

    ``up`` is bilinear (``align_corners=False``) to the size of ``r_{i-1}``,
    so ``decoder_channels[i + 1]`` must equal ``reduce_channels[i]``. The
    sides are returned coarse to fine, ``[s_4, s_3, s_2, s_1]``; ``s_4`` and
    ``s_3`` sit on the grids of ``c_3`` and ``c_2`` (the released code
    classifies the up-sampled maps). The loss is the one of
    :class:`DeepSupervisionHead`; the released one is the plain mean BCE of
    each side (``MaskedBCELoss(reduction='pixel')``, all weights 1).

    Args:
        in_channels (Sequence[int]): Channels of ``c_1..c_4``.
        reduce_channels (Sequence[int]): Widths of ``r_1..r_4``
            (released 64/128/256/512).
        decoder_channels (Sequence[int]): Widths of ``d_1..d_4``
            (released 32/64/128/256).
        side_channels (Sequence[int]): Hidden widths of the side heads
            (released 32/32/64/64).
        norm_cfg (dict): Norm of every block.
        act_cfg (dict): Activation of every block (released: PReLU, one
            slope per block).
        loss_decode (dict): The loss of every side output.
        aux_weights (Sequence[float]): Loss weight of each side output,
            coarse to fine.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 reduce_channels: Sequence[int] = (64, 128, 256, 512),
                 decoder_channels: Sequence[int] = (32, 64, 128, 256),
                 side_channels: Sequence[int] = (32, 32, 64, 64),
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='PReLU'),
                 loss_decode: ConfigType = RELEASED_LOSS,
                 aux_weights: Sequence[float] = (1.0, ) * 4,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(len(in_channels), loss_decode, aux_weights,
                         init_cfg=init_cfg)
        widths = [list(in_channels), list(reduce_channels),
                  list(decoder_channels), list(side_channels)]
        num_stages = len(widths[0])
        if num_stages < 2 or any(len(w) != num_stages for w in widths):
            raise ValueError(
                'in_channels, reduce_channels, decoder_channels and '
                'side_channels must name the same stages (at least 2), got '
                f'{widths}.')
        self.in_channels, self.reduce_channels, self.decoder_channels, \
            self.side_channels = widths
        for i in range(num_stages - 1):
            if self.decoder_channels[i + 1] != self.reduce_channels[i]:
                raise ValueError(
                    f'decoder_channels[{i + 1}] '
                    f'({self.decoder_channels[i + 1]}) must equal '
                    f'reduce_channels[{i}] ({self.reduce_channels[i]}): '
                    'the decoder adds them.')

        def block(in_ch: int, out_ch: int) -> ConvModule:
            return ConvModule(in_ch, out_ch, 3, padding=1, bias=False,
                              norm_cfg=norm_cfg, act_cfg=act_cfg)

        self.reduce_convs = nn.ModuleList(
            block(c, r) for c, r in zip(self.in_channels,
                                        self.reduce_channels))
        self.fuse_convs = nn.ModuleList(
            block(self.reduce_channels[i], self.decoder_channels[i])
            for i in range(num_stages))
        self.side_heads = nn.ModuleList(
            nn.Sequential(block(d, s), nn.Conv2d(s, 1, 1, bias=False))
            for d, s in zip(self.decoder_channels, self.side_channels))

    def decode(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """The decoder maps ``d_1..d_4`` (finest first), each
        ``[B, decoder_channels[i], h, w]`` (``d_i`` on ``c_{i-1}``'s grid
        for ``i > 1``)."""
        if len(feats) != len(self.reduce_convs):
            raise ValueError(f'{type(self).__name__} expects '
                             f'{len(self.reduce_convs)} feature maps, got '
                             f'{len(feats)}.')
        reduced = [conv(f) for conv, f in zip(self.reduce_convs, feats)]
        decoded = [None] * len(reduced)
        x = None
        for i in reversed(range(len(reduced))):
            x = self.fuse_convs[i](reduced[i] if x is None else x + reduced[i])
            if i > 0:
                x = F.interpolate(x, size=reduced[i - 1].shape[-2:],
                                  mode='bilinear', align_corners=False)
            decoded[i] = x
        return decoded

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Side logits ``[s_4, s_3, s_2, s_1]``, each ``[B, 1, h_i, w_i]``,
        coarse to fine; the last is the prediction."""
        decoded = self.decode(feats)
        return [
            self.side_heads[i](decoded[i])
            for i in reversed(range(len(decoded)))
        ]
