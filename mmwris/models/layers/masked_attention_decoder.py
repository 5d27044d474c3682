"""Mask2Former's masked-attention transformer decoder (post-norm).

Shapes: B images, Q queries of width D, ``mask_features [B, D_m, h, w]``.
Keys follow Mask2Former (``transformer_{cross,self}_attention_layers``,
``transformer_ffn_layers``, ``decoder_norm``, ``query_feat``,
``query_embed``, ``level_embed``, ``class_embed``, ``mask_embed``).
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from .msdeform_pixel_decoder import sine_position_embedding


class _AttentionLayer(nn.Module):
    """``LN(q + MHA(q + q_pos, k + k_pos, k))`` (sequence-first)."""

    def __init__(self, embed_dims: int, num_heads: int, name: str) -> None:
        super().__init__()
        self.name = name
        self.add_module(name, nn.MultiheadAttention(embed_dims, num_heads))
        self.norm = nn.LayerNorm(embed_dims)
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)

    def forward(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                memory_pos: Tensor, attn_mask=None) -> Tensor:
        out = getattr(self, self.name)(query + query_pos,
                                       memory + memory_pos, memory,
                                       attn_mask=attn_mask)[0]
        return self.norm(query + out)


class _FFNLayer(nn.Module):

    def __init__(self, embed_dims: int, ffn_dims: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dims, ffn_dims)
        self.linear2 = nn.Linear(ffn_dims, embed_dims)
        self.norm = nn.LayerNorm(embed_dims)
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))


class _MLP(nn.Module):

    def __init__(self, in_dims: int, hidden: int, out_dims: int,
                 num_layers: int) -> None:
        super().__init__()
        dims = [in_dims] + [hidden] * (num_layers - 1) + [out_dims]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


@MODELS.register_module()
class MaskedAttentionDecoder(nn.Module):
    """Queries cross-attend to the multi-scale features inside their own
    predicted masks (Mask2Former), cycling through the levels.

    Before the first layer and after each one, the prediction head gives
    class logits ``[B, Q, K + 1]`` and mask logits ``[B, Q, h, w]``
    (``mask_embed(LN(q)) . mask_features``); the next layer's attention
    mask is the bilinear (``align_corners=False``) resize of the mask
    logits to its level, ``sigmoid < 0.5`` masked, a fully masked row
    unmasked.

    Args:
        in_channels (int): Channels of the multi-scale features (a 1x1
            ``input_proj`` is added when they differ from ``hidden_dim``).
        hidden_dim (int): ``D``.
        mask_dim (int): Channels of the mask features.
        num_queries (int): Q (MagNet: 1).
        num_classes (int): K (class logits have K + 1 entries).
        num_heads (int): Attention heads.
        ffn_dims (int): FFN width.
        num_layers (int): Decoder layers (MagNet: 9).
        num_levels (int): Multi-scale levels cycled through.
    """

    def __init__(self,
                 in_channels: int = 256,
                 hidden_dim: int = 256,
                 mask_dim: int = 256,
                 num_queries: int = 1,
                 num_classes: int = 1,
                 num_heads: int = 8,
                 ffn_dims: int = 2048,
                 num_layers: int = 9,
                 num_levels: int = 3) -> None:
        super().__init__()
        self.num_heads, self.num_layers = num_heads, num_layers
        self.num_levels = num_levels
        self.hidden_dim = hidden_dim
        self.transformer_self_attention_layers = nn.ModuleList(
            _AttentionLayer(hidden_dim, num_heads, 'self_attn')
            for _ in range(num_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            _AttentionLayer(hidden_dim, num_heads, 'multihead_attn')
            for _ in range(num_layers))
        self.transformer_ffn_layers = nn.ModuleList(
            _FFNLayer(hidden_dim, ffn_dims) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_levels, hidden_dim)
        if in_channels != hidden_dim:
            self.input_proj = nn.ModuleList(
                nn.Conv2d(in_channels, hidden_dim, 1)
                for _ in range(num_levels))
        else:
            self.input_proj = None
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = _MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def prediction(self, query: Tensor, mask_features: Tensor,
                   target_size: Sequence[int]) -> Tuple[Tensor, ...]:
        """Class logits, mask logits and the next attention mask
        ``[B * heads, Q, h_l * w_l]`` (True = not allowed)."""
        decoded = self.decoder_norm(query).transpose(0, 1)
        logits = self.class_embed(decoded)
        masks = torch.einsum('bqc,bchw->bqhw', self.mask_embed(decoded),
                             mask_features)
        attn_mask = F.interpolate(masks, size=tuple(target_size),
                                  mode='bilinear', align_corners=False)
        attn_mask = (attn_mask.sigmoid().flatten(2).unsqueeze(1).repeat(
            1, self.num_heads, 1, 1).flatten(0, 1) < 0.5).detach()
        return logits, masks, attn_mask

    def forward(self, multi_scale: Sequence[Tensor],
                mask_features: Tensor) -> Dict[str, object]:
        """Decode.

        Args:
            multi_scale (Sequence[Tensor]): ``num_levels`` maps
                ``[B, C, h_l, w_l]``, coarsest first.
            mask_features (Tensor): ``[B, D_m, h, w]``.

        Returns:
            dict: ``pred_logits [B, Q, K + 1]``, ``pred_masks [B, Q, h, w]``
            (the last prediction) and ``all_logits`` / ``all_masks``: the
            ``num_layers + 1`` predictions, the first before any layer.
        """
        if len(multi_scale) != self.num_levels:
            raise ValueError(f'Expected {self.num_levels} levels, got '
                             f'{len(multi_scale)}.')
        srcs, pos, sizes = [], [], []
        for index, feature in enumerate(multi_scale):
            batch, _, height, width = feature.shape
            sizes.append((height, width))
            pos.append(sine_position_embedding(
                batch, height, width, self.hidden_dim // 2,
                device=feature.device).flatten(2).permute(2, 0, 1))
            if self.input_proj is not None:
                feature = self.input_proj[index](feature)
            src = feature.flatten(2) + self.level_embed.weight[index][None, :,
                                                                      None]
            srcs.append(src.permute(2, 0, 1))
        batch = srcs[0].shape[1]
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, batch, 1)
        query = self.query_feat.weight.unsqueeze(1).repeat(1, batch, 1)
        all_logits: List[Tensor] = []
        all_masks: List[Tensor] = []
        logits, masks, attn_mask = self.prediction(query, mask_features,
                                                   sizes[0])
        all_logits.append(logits)
        all_masks.append(masks)
        for index in range(self.num_layers):
            level = index % self.num_levels
            attn_mask[torch.where(
                attn_mask.sum(-1) == attn_mask.shape[-1])] = False
            query = self.transformer_cross_attention_layers[index](
                query, query_pos, srcs[level], pos[level], attn_mask)
            query = self.transformer_self_attention_layers[index](
                query, query_pos, query, query_pos)
            query = self.transformer_ffn_layers[index](query)
            logits, masks, attn_mask = self.prediction(
                query, mask_features, sizes[(index + 1) % self.num_levels])
            all_logits.append(logits)
            all_masks.append(masks)
        return dict(pred_logits=all_logits[-1], pred_masks=all_masks[-1],
                    all_logits=all_logits, all_masks=all_masks)
