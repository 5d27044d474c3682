"""Multi-scale deformable attention (Deformable DETR), pure PyTorch with an
optional compiled kernel.

Shapes: ``N`` batch, ``S = sum_l H_l W_l`` flattened value positions over
``L`` levels, ``M`` heads of width ``D``, ``Lq`` queries, ``P`` points per
level and head.

:func:`multi_scale_deformable_attention` samples every level with
``F.grid_sample`` (bilinear, zero padding, ``align_corners=False``: a
location in ``[0, 1]`` maps to pixel coordinate ``loc * W - 0.5``) and sums
the samples with the attention weights. :class:`MSDeformAttn` calls
mmcv's compiled kernel when it exists and the tensors are on a GPU, and this
function otherwise; ``mmcv.ops`` is only imported inside
:func:`compiled_kernel`, guarded (mmcv builds without ``_ext`` have none).
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS

_KERNEL = []


def compiled_kernel():
    """mmcv's ``MultiScaleDeformableAttnFunction`` if its compiled
    extension is importable, else None (checked once)."""
    if not _KERNEL:
        try:
            from mmcv.ops.multi_scale_deform_attn import \
                MultiScaleDeformableAttnFunction
            _KERNEL.append(MultiScaleDeformableAttnFunction)
        except Exception:  # ImportError, or an extension built without ops
            _KERNEL.append(None)
    return _KERNEL[0]


def multi_scale_deformable_attention(value: Tensor, spatial_shapes: Tensor,
                                     sampling_locations: Tensor,
                                     attention_weights: Tensor) -> Tensor:
    """Deformable attention over several levels, in PyTorch.

    Args:
        value (Tensor): ``[N, S, M, D]``, the levels flattened row-major one
            after the other.
        spatial_shapes (Tensor): ``[L, 2]`` long, ``(H_l, W_l)``.
        sampling_locations (Tensor): ``[N, Lq, M, L, P, 2]``, ``(x, y)``
            normalised to ``[0, 1]`` per level (outside: zero padding).
        attention_weights (Tensor): ``[N, Lq, M, L, P]``.

    Returns:
        Tensor: ``[N, Lq, M * D]``.
    """
    batch, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    grids = 2 * sampling_locations - 1
    samples = []
    for level, (value_l, (height, width)) in enumerate(
            zip(value.split(sizes, dim=1), spatial_shapes.tolist())):
        # [N, H*W, M, D] -> [N*M, D, H, W]
        value_l = value_l.flatten(2).transpose(1, 2).reshape(
            batch * heads, dim, int(height), int(width))
        # [N, Lq, M, P, 2] -> [N*M, Lq, P, 2]
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        samples.append(F.grid_sample(value_l, grid, mode='bilinear',
                                     padding_mode='zeros',
                                     align_corners=False))
    # [N*M, D, Lq, L*P]
    samples = torch.stack(samples, dim=-2).flatten(-2)
    weights = attention_weights.transpose(1, 2).reshape(
        batch * heads, 1, queries, levels * points)
    output = (samples * weights).sum(-1).view(batch, heads * dim, queries)
    return output.transpose(1, 2).contiguous()


@MODELS.register_module()
class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable DETR's ``MSDeformAttn``).

    Each query predicts ``P`` sampling offsets and weights per head and
    level; a location is ``reference + offset / (W_l, H_l)``; the weights
    are a softmax over the ``L * P`` samples of a head. State-dict keys:
    ``sampling_offsets``, ``attention_weights``, ``value_proj``,
    ``output_proj`` (as Deformable DETR / Mask2Former).

    Args:
        embed_dims (int): Channels of queries and values.
        num_levels (int): Levels ``L``.
        num_heads (int): Heads ``M``.
        num_points (int): Points ``P`` per level and head.
        im2col_step (int): Batch chunk of the compiled kernel.
        use_kernel (bool): Use mmcv's compiled kernel when it exists and the
            inputs are on a GPU. False always runs the PyTorch path.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_levels: int = 4,
                 num_heads: int = 8,
                 num_points: int = 4,
                 im2col_step: int = 64,
                 use_kernel: bool = True) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads}).')
        self.embed_dims = embed_dims
        self.num_levels = num_levels
        self.num_heads = num_heads
        self.num_points = num_points
        self.im2col_step = im2col_step
        self.use_kernel = use_kernel
        self.sampling_offsets = nn.Linear(
            embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims,
                                           num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's initialisation: zero offset weights, offsets
        biased along ``num_heads`` directions at distance 1..P, uniform
        attention."""
        nn.init.constant_(self.sampling_offsets.weight, 0.)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (
            2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(
            self.num_heads, 1, 1, 2).repeat(1, self.num_levels,
                                            self.num_points, 1)
        for i in range(self.num_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.)
        nn.init.constant_(self.attention_weights.bias, 0.)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.)

    def forward(self,
                query: Tensor,
                reference_points: Tensor,
                value: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                padding_mask: Optional[Tensor] = None) -> Tensor:
        """Attend from every query to its sampled points.

        Args:
            query (Tensor): ``[N, Lq, C]`` (with its position embedding).
            reference_points (Tensor): ``[N, Lq, L, 2]`` ``(x, y)`` in
                ``[0, 1]``.
            value (Tensor): ``[N, S, C]``.
            spatial_shapes (Tensor): ``[L, 2]`` long ``(H_l, W_l)``.
            level_start_index (Tensor): ``[L]`` start of each level in S.
            padding_mask (Tensor, optional): ``[N, S]`` True on padding.

        Returns:
            Tensor: ``[N, Lq, C]``.
        """
        batch, queries, _ = query.shape
        heads, levels, points = (self.num_heads, self.num_levels,
                                 self.num_points)
        if int((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum()) != \
                value.shape[1]:
            raise ValueError('spatial_shapes do not add up to the value '
                             f'length {value.shape[1]}.')
        value = self.value_proj(value)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.)
        value = value.view(batch, -1, heads, self.embed_dims // heads)
        offsets = self.sampling_offsets(query).view(batch, queries, heads,
                                                    levels, points, 2)
        weights = self.attention_weights(query).view(
            batch, queries, heads, levels * points).softmax(-1).view(
                batch, queries, heads, levels, points)
        normalizer = torch.stack(
            [spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
        locations = (reference_points[:, :, None, :, None, :] +
                     offsets / normalizer[None, None, None, :, None, :])
        kernel = compiled_kernel() if self.use_kernel else None
        if kernel is not None and value.is_cuda:
            output = kernel.apply(value, spatial_shapes, level_start_index,
                                  locations, weights, self.im2col_step)
        else:
            output = multi_scale_deformable_attention(value, spatial_shapes,
                                                      locations, weights)
        return self.output_proj(output)

