from typing import Dict, List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS


class DeepSupervisionHead(BaseModule):
    """What the step-2 heads share: ``forward`` returns one logit map per
    decoder stage, *coarse to fine* (the last is the prediction), and
    :meth:`loss` supervises every one of them (deep supervision)::

        loss_bce_side{i} = aux_weights[i] * loss_decode(up(s_i), y)

    ``up`` is bilinear (``align_corners=False``) to the target's size.

    Args:
        num_sides (int): Side outputs of ``forward``.
        loss_decode (dict): The loss of every side output; its
            ``loss_name`` gets the suffix ``_side{i}``.
        aux_weights (Sequence[float]): Loss weight of each side output, in
            the output order (coarse to fine).
    """

    def __init__(self, num_sides: int, loss_decode: ConfigType,
                 aux_weights: Sequence[float],
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.loss_decode = MODELS.build(loss_decode)
        self.aux_weights = tuple(float(w) for w in aux_weights)
        if len(self.aux_weights) != num_sides:
            raise ValueError(f'{num_sides} side outputs but '
                             f'{len(self.aux_weights)} aux_weights.')

    def predict(self, feats: Sequence[Tensor]) -> Tensor:
        """The final (finest) logits ``[B, 1, h_1, w_1]``."""
        return self(feats)[-1]

    def loss(self, feats: Sequence[Tensor],
             data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_bce_side{i}`` per side output (coarse to fine) and the
        final output's accuracy on the valid pixels (``acc_seg``)."""
        target = torch.stack(
            [sample.gt_sem_seg.data for sample in data_samples])[:, 0]
        losses = {}
        name = self.loss_decode.loss_name
        for i, (side, weight) in enumerate(zip(self(feats),
                                               self.aux_weights)):
            logits = F.interpolate(
                side, size=target.shape[-2:], mode='bilinear',
                align_corners=False)[:, 0]
            losses[f'{name}_side{i}'] = self.loss_decode(
                logits, target, weight)
        with torch.no_grad():
            valid = target != self.loss_decode.ignore_index
            correct = ((logits > 0) == (target == 1)) & valid
            losses['acc_seg'] = correct.sum() / valid.sum().clamp_min(1)
        return losses


@MODELS.register_module()
class TRISStep2Head(DeepSupervisionHead):
    """TRIS step-2 decoder: top-down, symmetric to the encoder, with deep
    supervision (one logit map per decoder stage).

    With ``c_1..c_4`` the (language-fused) encoder maps, finest first::

        d_4 = Block_4(c_4)
        d_i = Block_i(cat(up(d_{i+1}), c_i))     i = 3, 2, 1
        s_i = Conv1x1(d_i)                       [B, 1, h_i, w_i]

    ``up`` is bilinear to ``c_i``'s size and ``Block`` is ``num_convs``
    3x3 conv + norm + ReLU (LAVT's decoder with one stage per encoder
    stage).

    Deep supervision (:meth:`loss`): every side output is up-sampled
    (bilinear) to the padded input size and supervised with ``loss_decode``
    (default :class:`MaskedBCELoss`, 255 ignored)::

        loss_bce_side{i} = aux_weights[i] * BCE(up(s_i), y)

    Args:
        in_channels (Sequence[int]): Channels of ``c_1..c_4``.
        channels (int | Sequence[int]): Width of ``d_1..d_4`` (one int for
            all stages).
        num_convs (int): Convs per decoder block.
        norm_cfg (dict): Norm of the conv blocks.
        act_cfg (dict): Activation of the conv blocks.
        dropout_ratio (float): Dropout before each side classifier.
        loss_decode (dict): The loss of every side output; its
            ``loss_name`` gets the suffix ``_side{i}``.
        aux_weights (Sequence[float]): Loss weight of each side output, in
            the output order (coarse to fine).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: Union[int, Sequence[int]] = 256,
                 num_convs: int = 2,
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 dropout_ratio: float = 0.0,
                 loss_decode: ConfigType = dict(
                     type='MaskedBCELoss', reduction='sample',
                     ignore_index=255),
                 aux_weights: Sequence[float] = (0.4, 0.4, 0.4, 1.0),
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(len(in_channels), loss_decode, aux_weights,
                         init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        num_stages = len(self.in_channels)
        if isinstance(channels, int):
            channels = [channels] * num_stages
        self.channels = list(channels)
        if len(self.channels) != num_stages or num_stages < 2:
            raise ValueError(
                f'in_channels {self.in_channels} and channels '
                f'{self.channels} must name the same stages (at least 2).')
        if num_convs < 1:
            raise ValueError(f'num_convs must be >= 1, got {num_convs}.')
        self.blocks = nn.ModuleList()
        self.side_convs = nn.ModuleList()
        for stage in range(num_stages):
            width = self.in_channels[stage]
            if stage < num_stages - 1:
                width += self.channels[stage + 1]
            convs = []
            for i in range(num_convs):
                convs.append(
                    ConvModule(
                        width if i == 0 else self.channels[stage],
                        self.channels[stage],
                        3,
                        padding=1,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg))
            self.blocks.append(nn.Sequential(*convs))
            self.side_convs.append(
                nn.Sequential(
                    nn.Dropout2d(dropout_ratio),
                    nn.Conv2d(self.channels[stage], 1, 1)))

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Decode.

        Args:
            feats (Sequence[Tensor]): ``c_1..c_4``, ``[B, in_channels[i],
                h_i, w_i]``, finest first.

        Returns:
            list[Tensor]: Side logits ``[s_4, s_3, s_2, s_1]``, each
            ``[B, 1, h_i, w_i]``: *coarse to fine*, the last (finest,
            ``c_1``'s grid) is the final prediction.
        """
        if len(feats) != len(self.blocks):
            raise ValueError(f'TRISStep2Head expects {len(self.blocks)} '
                             f'feature maps, got {len(feats)}.')
        sides = []
        decoded = None
        for stage in reversed(range(len(self.blocks))):
            x = feats[stage]
            if decoded is not None:
                decoded = F.interpolate(
                    decoded, size=x.shape[-2:], mode='bilinear',
                    align_corners=False)
                x = torch.cat([decoded, x], dim=1)
            decoded = self.blocks[stage](x)
            sides.append(self.side_convs[stage](decoded))
        return sides
