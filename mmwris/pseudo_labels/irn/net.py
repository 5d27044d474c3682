"""The inter-pixel relation network of IRN (Ahn et al., CVPR 2019).

A ResNet backbone feeds two light branches at stride 4 (the released TRIS /
IRN code, ``IRNet/net/resnet50_irn.py``):

* the **class boundary** branch predicts one logit per pixel, ``B(x) =
  sigmoid(edge)``; the affinity of two pixels within the search radius is
  ``a_ij = 1 - max_{k in path(i, j)} B(x_k)`` (Eq. 2 of the paper);
* the **displacement** branch predicts ``D(x)`` [2 = (dy, dx)], a vector
  pointing from a pixel to the centroid of its instance, so that two pixels
  ``i``, ``j`` of one instance satisfy ``D(x_i) - D(x_j) = x_j - x_i``.

Both branches are supervised by the pairwise labels of
:func:`mmwris.pseudo_labels.irn.path_index.affinity_labels` (Eq. 3-6)::

    L = (L_pos_aff + L_neg_aff) / 2 + (L_dp_fg + L_dp_bg) / 2

with the released normalisation (see :meth:`AffinityDisplacementNet.
loss_by_outputs`). Plain PyTorch: nothing is registered.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torchvision
from torch import Tensor

from mmwris.models.foundation.checkpoint import load_weights_strict
from .path_index import PathIndex, edge_to_affinity

__all__ = ['IRNBackbone', 'MeanShift', 'AffinityDisplacementNet']

_RESNETS = {
    18: torchvision.models.resnet18,
    34: torchvision.models.resnet34,
    50: torchvision.models.resnet50,
    101: torchvision.models.resnet101,
}
# Keys of a torchvision ImageNet checkpoint that the backbone does not use.
_CLASSIFIER_KEYS = ('fc.weight', 'fc.bias')
_EDGE_WIDTH = 32
_LOG_EPS = 1e-5


class IRNBackbone(nn.Module):
    """A torchvision ResNet returning its five stage outputs.

    Args:
        depth (int): 18, 34, 50 or 101.
        strides (Sequence[int]): Strides of the stem convolution and of the
            first blocks of ``layer2``, ``layer3``, ``layer4`` (the stem's
            max pooling always halves). IRN uses ``(2, 2, 2, 1)``: outputs
            at strides 4, 4, 8, 16, 16.
        pretrained (str, optional): Local torchvision ImageNet checkpoint,
            loaded strictly; its classifier keys ``fc.weight`` /
            ``fc.bias`` are dropped (the backbone has no classifier) and may
            be absent. Nothing is ever downloaded.
        frozen (bool): IRN's setting (``True``): batch norm always uses its
            running statistics and fixed affine parameters (the released
            ``FixedBatchNorm``), no parameter receives a gradient, every
            stage output is detached and the module stays in eval mode when
            ``.train()`` is called. ``False`` is our option for data without
            ImageNet weights (the offline toy sets): the backbone trains
            like the heads, batch norm included.

    Attributes:
        out_channels (tuple[int]): Channels of the 5 outputs, e.g.
            ``(64, 256, 512, 1024, 2048)`` for depth 50.
        strides (tuple[int]): Output stride of each of the 5 outputs.
    """

    def __init__(self,
                 depth: int = 50,
                 strides: Sequence[int] = (2, 2, 2, 1),
                 pretrained: str = None,
                 frozen: bool = True):
        super().__init__()
        if depth not in _RESNETS:
            raise ValueError(f'IRNBackbone depth must be one of '
                             f'{sorted(_RESNETS)}, got {depth}')
        if len(strides) != 4:
            raise ValueError(f'strides must have 4 values (stem, layer2, '
                             f'layer3, layer4), got {tuple(strides)}')
        resnet = _RESNETS[depth](weights=None)
        resnet.fc = nn.Identity()
        if pretrained is not None:
            load_weights_strict(
                resnet,
                pretrained,
                what=f'ImageNet ResNet-{depth}',
                drop_keys=_CLASSIFIER_KEYS,
                optional_suffixes=('num_batches_tracked', ))
        resnet.conv1.stride = (strides[0], strides[0])
        for layer, stride in zip(
                (resnet.layer2, resnet.layer3, resnet.layer4), strides[1:]):
            _set_stride(layer, stride)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu,
                                  resnet.maxpool)
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.out_channels = tuple(
            [resnet.conv1.out_channels] +
            [_block_channels(layer[-1]) for layer in self.stages[1:]])
        stride = strides[0] * 2
        out_strides = [stride, stride]
        for s in strides[1:]:
            stride *= s
            out_strides.append(stride)
        self.strides = tuple(out_strides)
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            super().train(False)

    @property
    def stages(self) -> List[nn.Module]:
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]

    def train(self, mode: bool = True) -> 'IRNBackbone':
        """Set the mode; a frozen backbone stays in eval mode."""
        return super().train(mode and not self.frozen)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """``x`` [B, 3, H, W] -> 5 maps [B, out_channels[i], ~H/strides[i],
        ~W/strides[i]] (detached when frozen)."""
        outs = []
        for stage in self.stages:
            x = stage(x)
            if self.frozen:
                x = x.detach()
            outs.append(x)
        return tuple(outs)


def _set_stride(layer: nn.Sequential, stride: int) -> None:
    """Give the first block of a ResNet layer the stride ``stride``."""
    block = layer[0]
    conv = block.conv2 if isinstance(
        block, torchvision.models.resnet.Bottleneck) else block.conv1
    conv.stride = (stride, stride)
    block.stride = stride
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


def _block_channels(block: nn.Module) -> int:
    last = block.conv3 if hasattr(block, 'conv3') else block.conv2
    return last.out_channels


class MeanShift(nn.Module):
    """Subtract ``running_mean`` [C] from a map [B, C, H, W] in eval mode.

    In training the input passes unchanged; after training,
    ``running_mean`` is set to the mean displacement over the training
    images, so that the inferred displacement field is centred.
    """

    def __init__(self, num_features: int = 2):
        super().__init__()
        self.register_buffer('running_mean', torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return x
        return x - self.running_mean.view(1, -1, 1, 1)


def _head(in_channels: int, out_channels: int, groups: int,
          scale: int) -> nn.Sequential:
    """1x1 conv (no bias) -> GroupNorm -> [x``scale`` bilinear] -> ReLU."""
    layers = [
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.GroupNorm(groups, out_channels)
    ]
    if scale > 1:
        layers.append(
            nn.Upsample(
                scale_factor=scale, mode='bilinear', align_corners=False))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _crop_to(x: Tensor, ref: Tensor) -> Tensor:
    """Keep the top-left ``ref``-sized part of ``x`` (after upsampling)."""
    return x[..., :ref.shape[2], :ref.shape[3]]


class AffinityDisplacementNet(nn.Module):
    """IRN: class boundary and displacement field at the stride of output 1.

    Args:
        backbone (dict): Keyword arguments of :class:`IRNBackbone`. The
            branch widths follow ``out_channels`` and the upsampling
            factors the backbone ``strides``, so other depths work; with the
            default strides all maps are at stride 4.

    Branches (``c_i`` the backbone channels, ``s_i`` its strides)::

        edge_i = ReLU(up_{s_i/s_1}(GN(4, 32)(conv1x1(c_i -> 32)))), i=0..4
        edge   = conv1x1(cat(edge_0..4) [160] -> 1, bias)
        dp_0 = 64 ch (GN 8), dp_1 = 128 ch (GN 16) at s_1,
        dp_2..4 = 256 ch (GN 16), dp_3/dp_4 upsampled to s_2,
        dp_up = up_{s_2/s_1}(GN(16)(conv1x1(cat(dp_2..4) [768] -> 256)))
        disp = MeanShift(conv1x1(ReLU(GN(conv1x1(cat(dp_0, dp_1, dp_up)
               [448] -> 256))) -> 2))

    Upsampled maps are cropped to the top-left size of their target.
    """

    def __init__(self, backbone: dict = None):
        super().__init__()
        self.backbone = IRNBackbone(**(backbone or {}))
        channels = self.backbone.out_channels
        strides = self.backbone.strides
        base = strides[1]
        self.edge_layers = nn.ModuleList([
            _head(c, _EDGE_WIDTH, 4, s // base)
            for c, s in zip(channels, strides)
        ])
        self.edge_out = nn.Conv2d(5 * _EDGE_WIDTH, 1, 1, bias=True)
        mid = strides[2]
        self.dp_layers = nn.ModuleList([
            _head(channels[0], 64, 8, 1),
            _head(channels[1], 128, 16, 1),
            _head(channels[2], 256, 16, 1),
            _head(channels[3], 256, 16, strides[3] // mid),
            _head(channels[4], 256, 16, strides[4] // mid),
        ])
        self.dp_up = _head(3 * 256, 256, 16, mid // base)
        self.mean_shift = MeanShift(2)
        self.dp_out = nn.Sequential(
            nn.Conv2d(64 + 128 + 256, 256, 1, bias=False),
            nn.GroupNorm(16, 256), nn.ReLU(inplace=True),
            nn.Conv2d(256, 2, 1, bias=False))
        self.stride = base

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``x`` [B, 3, H, W] normalised RGB -> ``(edge_logits [B, 1, h,
        w], displacement [B, 2, h, w])``, ``h = ceil(H / 4)`` with the
        default strides (the displacement is mean-shifted in eval mode)."""
        feats = self.backbone(x)
        ref = feats[1]
        edges = [
            _crop_to(layer(feat), ref)
            for layer, feat in zip(self.edge_layers, feats)
        ]
        edge = self.edge_out(torch.cat(edges, dim=1))
        dps = [layer(feat) for layer, feat in zip(self.dp_layers, feats)]
        dps[3] = _crop_to(dps[3], dps[2])
        dps[4] = _crop_to(dps[4], dps[2])
        dp_up = _crop_to(self.dp_up(torch.cat(dps[2:], dim=1)), dps[1])
        disp = self.mean_shift(
            self.dp_out(torch.cat([dps[0], dps[1], dp_up], dim=1)))
        return edge, disp

    def param_groups(self) -> Tuple[List[nn.Parameter], List[nn.Parameter]]:
        """``(edge params, displacement params)``, the two lr groups.

        A trainable backbone (``frozen=False``, our option) is put with the
        edge group (base learning rate); a frozen one contributes nothing.
        """
        edge = list(self.edge_layers.parameters()) + list(
            self.edge_out.parameters())
        if not self.backbone.frozen:
            edge = list(self.backbone.parameters()) + edge
        displacement = list(self.dp_layers.parameters()) + list(
            self.dp_up.parameters()) + list(self.dp_out.parameters())
        return edge, displacement

    def loss(self, x: Tensor, bg_pos: Tensor, fg_pos: Tensor, neg: Tensor,
             path_index: PathIndex) -> Dict[str, Tensor]:
        """Forward ``x`` [B, 3, S, S] and compute the IRN loss.

        See :meth:`loss_by_outputs`; ``path_index`` must address the
        output size (``PathIndex(radius, (S // 4, S // 4))``).
        """
        edge, disp = self(x)
        return self.loss_by_outputs(edge, disp, bg_pos, fg_pos, neg,
                                    path_index)

    @staticmethod
    def loss_by_outputs(edge: Tensor, disp: Tensor, bg_pos: Tensor,
                        fg_pos: Tensor, neg: Tensor,
                        path_index: PathIndex) -> Dict[str, Tensor]:
        """The IRN loss from the outputs (what a DDP-wrapped forward gives).

        Args:
            edge (Tensor): Boundary logits [B, 1, h, w].
            disp (Tensor): Displacements [B, 2, h, w] (dy, dx).
            bg_pos, fg_pos, neg (Tensor): Pair labels [B, P, N_src] (1/0)
                from ``affinity_labels``.
            path_index (PathIndex): Built for size ``(h, w)``.

        With ``a = edge_to_affinity(sigmoid(edge))`` [B, P, N_src],
        ``pos = -log(a + 1e-5)``, ``negl = -log(1 + 1e-5 - a)`` and the
        pair displacement ``d = D(src) - D(dst)`` [B, 2, P, N_src] against
        the pair offset ``t = dst - src`` (``search_dst``)::

            L_pos_aff = S(bg_pos * pos) / (S(bg_pos) + eps) / 2
                      + S(fg_pos * pos) / (S(fg_pos) + eps) / 2
            L_neg_aff = S(neg * negl) / (S(neg) + eps)
            L_dp_fg = S(fg_pos * |d - t|) / (2 S(fg_pos) + eps)
            L_dp_bg = S(bg_pos * |d|) / (2 S(bg_pos) + eps)
            L = (L_pos_aff + L_neg_aff) / 2 + (L_dp_fg + L_dp_bg) / 2

        ``S`` sums over everything (batch, pairs, and for ``d`` its 2
        channels, hence the 2), ``eps = 1e-5``.

        Returns:
            dict: ``loss_pos_aff``, ``loss_neg_aff``, ``loss_dp_fg``,
            ``loss_dp_bg`` and their combination ``loss``.
        """
        aff = edge_to_affinity(torch.sigmoid(edge), path_index.path_indices)
        pos_term = -torch.log(aff + _LOG_EPS)
        neg_term = -torch.log(1. + _LOG_EPS - aff)
        bg_pos_aff = (bg_pos * pos_term).sum() / (bg_pos.sum() + _LOG_EPS)
        fg_pos_aff = (fg_pos * pos_term).sum() / (fg_pos.sum() + _LOG_EPS)
        loss_pos_aff = bg_pos_aff / 2 + fg_pos_aff / 2
        loss_neg_aff = (neg * neg_term).sum() / (neg.sum() + _LOG_EPS)

        pair_disp = _pair_displacement(disp, path_index)
        target = torch.as_tensor(
            path_index.search_dst, dtype=disp.dtype,
            device=disp.device).t().reshape(1, 2, -1, 1)
        loss_dp_fg = (torch.abs(pair_disp - target) * fg_pos.unsqueeze(1)
                      ).sum() / (2 * fg_pos.sum() + _LOG_EPS)
        loss_dp_bg = (torch.abs(pair_disp) * bg_pos.unsqueeze(1)).sum() / (
            2 * bg_pos.sum() + _LOG_EPS)
        loss = (loss_pos_aff + loss_neg_aff) / 2 + (loss_dp_fg +
                                                     loss_dp_bg) / 2
        return dict(
            loss_pos_aff=loss_pos_aff,
            loss_neg_aff=loss_neg_aff,
            loss_dp_fg=loss_dp_fg,
            loss_dp_bg=loss_dp_bg,
            loss=loss)

    @torch.no_grad()
    def predict(self, image: Tensor) -> Tuple[Tensor, Tensor]:
        """Boundary and displacement of one image (the released
        ``EdgeDisplacement``), in eval mode.

        The image and its horizontal flip run as a batch of 2; the maps are
        cropped to ``(ceil(H / 4), ceil(W / 4))``::

            edge = sigmoid((edge[0] + flip(edge[1])) / 2),  disp = disp[0]

        Args:
            image (Tensor): [3, H, W], normalised RGB.

        Returns:
            tuple: ``edge`` [h, w] in [0, 1] and ``displacement`` [2, h, w]
            (mean-shifted; from the unflipped image only).
        """
        was_training = self.training
        self.eval()
        try:
            height = -(-image.shape[1] // self.stride)
            width = -(-image.shape[2] // self.stride)
            batch = torch.stack([image, image.flip(-1)])
            edge, disp = self(batch)
            edge = edge[:, 0, :height, :width]
            disp = disp[:, :, :height, :width]
            edge = torch.sigmoid(edge[0] / 2 + edge[1].flip(-1) / 2)
            return edge, disp[0]
        finally:
            self.train(was_training)


def _pair_displacement(disp: Tensor, path_index: PathIndex) -> Tensor:
    """``D(src) - D(dst)`` for every pair: [B, 2, h, w] -> [B, 2, P, N_src]
    (sources cropped like ``PathIndex``: rows ``[0, h - r)``, columns
    ``[r, w - r)``, ``r = radius_floor``)."""
    r = path_index.radius_floor
    height = disp.shape[2] - r
    width = disp.shape[3] - 2 * r
    src = disp[:, :, :height, r:r + width]
    dst = torch.stack([
        disp[:, :, dy:dy + height, r + dx:r + dx + width]
        for dy, dx in path_index.search_dst
    ], dim=2)
    pair = src.unsqueeze(2) - dst
    return pair.flatten(3)
