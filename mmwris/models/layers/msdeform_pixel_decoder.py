"""Mask2Former's pixel decoder: a multi-scale deformable-attention encoder
over the backbone levels (no padding mask, post-norm layers).

Shapes: B images, levels ordered from the coarsest (``l = 0``) to the
finest, ``D`` the decoder width (``conv_dim``).
"""
import math
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from .ms_deform_attn import MSDeformAttn


def sine_position_embedding(batch: int, height: int, width: int,
                            num_feats: int, temperature: float = 10000.,
                            device=None) -> Tensor:
    """DETR's normalised sine embedding ``[B, 2 * num_feats, H, W]``.

    Positions are ``cumsum / (last + 1e-6) * 2 pi`` per axis; the
    ``y``-part comes first, each interleaving sin (even) and cos (odd).
    """
    ones = torch.ones(batch, height, width, device=device)
    y_embed = ones.cumsum(1, dtype=torch.float32)
    x_embed = ones.cumsum(2, dtype=torch.float32)
    eps, scale = 1e-6, 2 * math.pi
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature**(2 * torch.div(dim_t, 2, rounding_mode='floor') /
                          num_feats)
    pos_x = x_embed[..., None] / dim_t
    pos_y = y_embed[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()),
                        dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()),
                        dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class DeformableEncoderLayer(nn.Module):
    """Post-norm layer: ``LN(x + MSDA(x + pos))``, ``LN(x + FFN(x))``."""

    def __init__(self, embed_dims: int, ffn_dims: int, num_levels: int,
                 num_heads: int, num_points: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(embed_dims, num_levels, num_heads,
                                      num_points)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.linear1 = nn.Linear(embed_dims, ffn_dims)
        self.linear2 = nn.Linear(ffn_dims, embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor, reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor) -> Tensor:
        attn = self.self_attn(src + pos, reference_points, src,
                              spatial_shapes, level_start_index)
        src = self.norm1(src + self.dropout(attn))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout(ffn))


@MODELS.register_module()
class MSDeformAttnPixelDecoder(nn.Module):
    """Deformable-attention pixel decoder whose levels are *all* the
    backbone features (MagNet: strides 32, 16, 8 and 4; no FPN convs).

    Each feature gets a 1x1 conv + GroupNorm to ``conv_dim``, a sine
    position embedding plus a learnt level embedding; the encoder refines
    all levels together (reference point = the pixel centre, shared by the
    levels). The mask features are a 1x1 conv of the finest level.

    Args:
        in_channels (Sequence[int]): Channels of the features, finest
            first (e.g. 128, 256, 512, 1024).
        conv_dim (int): Width ``D`` of the encoder.
        mask_dim (int): Width of the mask features.
        num_layers (int): Encoder layers.
        ffn_dims (int): Encoder FFN width (released MagNet: 1024).
        num_heads (int): Deformable-attention heads.
        num_points (int): Points per level and head.
        num_groups (int): GroupNorm groups of the input projections.
        num_outs (int): Levels returned as multi-scale features (coarsest
            first; Mask2Former: 3).
        dropout (float): Encoder dropout.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 conv_dim: int = 256,
                 mask_dim: int = 256,
                 num_layers: int = 6,
                 ffn_dims: int = 1024,
                 num_heads: int = 8,
                 num_points: int = 4,
                 num_groups: int = 32,
                 num_outs: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        levels = len(self.in_channels)
        self.num_outs = num_outs
        self.conv_dim = conv_dim
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, conv_dim, 1),
                          nn.GroupNorm(num_groups, conv_dim))
            for channels in self.in_channels[::-1])
        self.level_embed = nn.Parameter(torch.empty(levels, conv_dim))
        self.encoder_layers = nn.ModuleList(
            DeformableEncoderLayer(conv_dim, ffn_dims, levels, num_heads,
                                   num_points, dropout)
            for _ in range(num_layers))
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, 1)
        self.init_weights()

    def init_weights(self) -> None:
        for layer in self.encoder_layers:
            for param in layer.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)
            layer.self_attn.reset_parameters()
        nn.init.normal_(self.level_embed)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)
        nn.init.kaiming_uniform_(self.mask_features.weight, a=1)
        nn.init.constant_(self.mask_features.bias, 0)

    @staticmethod
    def reference_points(spatial_shapes: Tensor, num_levels: int,
                         device) -> Tensor:
        """Pixel centres ``(x, y)`` normalised per level ``[1, S, L, 2]``."""
        points = []
        for height, width in spatial_shapes.tolist():
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, height - 0.5, height, device=device),
                torch.linspace(0.5, width - 0.5, width, device=device),
                indexing='ij')
            points.append(torch.stack((ref_x.reshape(-1) / width,
                                       ref_y.reshape(-1) / height), -1))
        points = torch.cat(points, 0)[None]
        return points[:, :, None].expand(-1, -1, num_levels, -1)

    def forward(self, features: Sequence[Tensor]) -> Dict[str, object]:
        """Encode the features.

        Args:
            features (Sequence[Tensor]): ``[B, C_i, H_i, W_i]``, finest
                first.

        Returns:
            dict: ``mask_features [B, mask_dim, H_0, W_0]`` (finest level),
            ``multi_scale`` (the ``num_outs`` coarsest encoded levels,
            ``[B, D, H, W]`` each, coarsest first) and ``levels`` (all).
        """
        srcs, pos, shapes = [], [], []
        for index, feature in enumerate(features[::-1]):
            batch, _, height, width = feature.shape
            src = self.input_proj[index](feature.float())
            embed = sine_position_embedding(batch, height, width,
                                            self.conv_dim // 2,
                                            device=feature.device)
            srcs.append(src.flatten(2).transpose(1, 2))
            pos.append(embed.flatten(2).transpose(1, 2) +
                       self.level_embed[index].view(1, 1, -1))
            shapes.append((height, width))
        src, pos = torch.cat(srcs, 1), torch.cat(pos, 1)
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long,
                                         device=src.device)
        sizes = [h * w for h, w in shapes]
        start = torch.as_tensor([0] + sizes[:-1],
                                device=src.device).cumsum(0)
        reference = self.reference_points(spatial_shapes, len(shapes),
                                          src.device)
        for layer in self.encoder_layers:
            src = layer(src, pos, reference, spatial_shapes, start)
        levels: List[Tensor] = [
            level.transpose(1, 2).reshape(len(src), -1, h, w)
            for level, (h, w) in zip(src.split(sizes, 1), shapes)
        ]
        return dict(mask_features=self.mask_features(levels[-1]),
                    multi_scale=levels[:self.num_outs], levels=levels)
