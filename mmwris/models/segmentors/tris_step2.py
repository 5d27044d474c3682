from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from ..layers import PixelWordAttention
from .base_ris import BaseRISSegmentor


def masked_bce_with_logits(logits: Tensor,
                           target: Tensor,
                           ignore_index: int = 255,
                           reduction: str = 'sample') -> Tensor:
    """Binary cross-entropy that skips ``ignore_index`` pixels.

    With ``V_b`` the valid pixels of sample ``b`` (``target != ignore``)::

        l_bp = -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]
        'sample': loss = 1/B sum_b (1/|V_b| sum_{p in V_b} l_bp)
        'pixel':  loss = sum_b sum_{p in V_b} l_bp / sum_b |V_b|

    A sample (``'sample'``) or batch (``'pixel'``) without valid pixels
    contributes 0.

    Args:
        logits (Tensor): ``[B, H, W]``.
        target (Tensor): ``[B, H, W]`` with values 0, 1 and ``ignore_index``.
        ignore_index (int): Label of ignored pixels.
        reduction (str): ``'sample'``: mean over each sample's valid pixels,
            then over the batch (every expression weighs the same);
            ``'pixel'``: mean over all valid pixels of the batch.
    """
    if logits.shape != target.shape:
        raise ValueError(f'logits {tuple(logits.shape)} and target '
                         f'{tuple(target.shape)} must have the same shape.')
    valid = target != ignore_index
    if bool(((target != 0) & (target != 1) & valid).any()):
        values = torch.unique(target).tolist()
        raise ValueError(f'Binary targets must be 0, 1 or {ignore_index} '
                         f'(ignored), got the values {values}.')
    labels = (target == 1).to(logits.dtype)
    losses = F.binary_cross_entropy_with_logits(
        logits, labels, reduction='none') * valid
    if reduction == 'sample':
        per_sample = losses.flatten(1).sum(1) / valid.flatten(1).sum(
            1).clamp_min(1)
        return per_sample.mean()
    if reduction == 'pixel':
        return losses.sum() / valid.sum().clamp_min(1)
    raise ValueError(f'reduction must be "sample" or "pixel", not '
                     f'"{reduction}".')


@MODELS.register_module()
class TRISStep2Segmentor(BaseRISSegmentor):
    """TRIS step 2: a text-conditioned segmentation network trained on
    pseudo masks.

    CLIP image tower stages ``c_1..c_4``; the expression's word tokens
    (``CLIPTextEncoder`` ``tokens``/``mask``) are fused into the stages of
    ``fusion_stages`` by :class:`PixelWordAttention`; the top-down
    ``decode_head`` returns one logit map per stage (coarse to fine, the
    last is the prediction), each supervised with
    :func:`masked_bce_with_logits` after bilinear upsampling to the
    (padded) input size::

        loss_bce_side{i} = aux_weights[i] * BCE(up(s_i), y)   (255 ignored)

    Args:
        image_encoder (dict): ``CLIPVisionEncoder`` (any backbone returning
            4 maps with ``early_fusion=False``).
        text_encoder (dict): ``CLIPTextEncoder``; its ``tokens [T, L, C]``
            and ``mask [T, L]`` are used. Its sentence projection, unused
            here, is frozen (DDP needs a gradient for every trainable
            parameter).
        decode_head (dict): ``TRISStep2Head`` config.
        fusion_stages (Sequence[int]): 0-based stages of ``c_1..c_4``
            fused with the words (the paper: the last three).
        fusion_cfg (dict): Extra :class:`PixelWordAttention` kwargs:
            ``channels`` (int, list per stage, or None = the stage's visual
            channels), ``num_heads``, ``dropout``.
        early_fusion (bool): LAVT's order: a fused stage output is the
            *input of the next encoder stage* (needs a ``CLIPVisionEncoder``
            on a ModifiedResNet with ``out_indices=(0, 1, 2, 3)``). False
            fuses the encoder's outputs independently (any backbone).
        visual_channels (Sequence[int], optional): Channels of ``c_1..c_4``;
            read from ``image_encoder.out_channels`` when None.
        text_channels (int, optional): Width of the word tokens; read from
            ``text_encoder.width`` when None.
        aux_weights (Sequence[float]): Loss weight of each side output, in
            the head's order (coarse to fine).
        loss_reduction (str): ``'sample'`` or ``'pixel'``, see
            :func:`masked_bce_with_logits`.
        ignore_index (int): Label of the ignored pixels of the pseudo masks.
        test_cfg (dict): ``response_norm`` (default ``'sigmoid'``) and
            ``mask_threshold`` (default 0.5) of the base class.
    """

    def __init__(self,
                 image_encoder: ConfigType,
                 text_encoder: ConfigType,
                 decode_head: ConfigType,
                 fusion_stages: Sequence[int] = (1, 2, 3),
                 fusion_cfg: OptConfigType = None,
                 early_fusion: bool = True,
                 visual_channels: Optional[Sequence[int]] = None,
                 text_channels: Optional[int] = None,
                 aux_weights: Sequence[float] = (0.4, 0.4, 0.4, 1.0),
                 loss_reduction: str = 'sample',
                 ignore_index: int = 255,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        test_cfg = dict(
            dict(response_norm='sigmoid', mask_threshold=0.5),
            **dict(test_cfg or {}))
        super().__init__(
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
            test_cfg=test_cfg,
            train_cfg=train_cfg)
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        projection = getattr(self.text_encoder, 'text_projection', None)
        if projection is not None:
            projection.requires_grad_(False)
        self.decode_head = MODELS.build(decode_head)
        if loss_reduction not in ('sample', 'pixel'):
            raise ValueError('loss_reduction must be "sample" or "pixel", '
                             f'not "{loss_reduction}".')
        self.loss_reduction = loss_reduction
        self.aux_weights = tuple(float(w) for w in aux_weights)
        self.ignore_index = ignore_index
        self.early_fusion = early_fusion
        if visual_channels is None:
            visual_channels = getattr(self.image_encoder, 'out_channels',
                                      None)
        if text_channels is None:
            text_channels = getattr(self.text_encoder, 'width', None)
        if visual_channels is None or text_channels is None:
            raise ValueError('Give visual_channels and text_channels: they '
                             'cannot be read from the encoders.')
        self.visual_channels = list(visual_channels)
        num_stages = len(self.visual_channels)
        self.fusion_stages = tuple(sorted(set(fusion_stages)))
        if any(not 0 <= s < num_stages for s in self.fusion_stages):
            raise ValueError(f'fusion_stages {tuple(fusion_stages)} must be '
                             f'in 0..{num_stages - 1}.')
        if early_fusion:
            self._check_staged_encoder(num_stages)
        fusion_cfg = dict(fusion_cfg or {})
        widths = fusion_cfg.pop('channels', None)
        if widths is None or isinstance(widths, int):
            widths = [widths] * num_stages
        self.fusions = nn.ModuleDict({
            f'stage{s}': PixelWordAttention(
                self.visual_channels[s], text_channels,
                widths[s] or self.visual_channels[s], **fusion_cfg)
            for s in self.fusion_stages
        })

    def _check_staged_encoder(self, num_stages: int) -> None:
        encoder = self.image_encoder
        if getattr(encoder, 'kind', None) != 'resnet' or tuple(
                encoder.out_indices) != tuple(range(num_stages)):
            raise ValueError(
                'early_fusion needs a CLIPVisionEncoder on a ModifiedResNet '
                'returning every stage (out_indices=(0, 1, 2, 3)); set '
                'early_fusion=False for other backbones.')

    def encode_text(self, data_samples: SampleList) -> Tuple[Tensor, Tensor]:
        """Word tokens ``[B, L, C]`` and their mask ``[B, L]``."""
        if not data_samples:
            raise ValueError('TRISStep2Segmentor needs data samples with '
                             'texts.')
        text = self.text_encoder(self.texts_of(data_samples))
        return text['tokens'], text['mask']

    def _fuse(self, stage: int, visual: Tensor, words: Tensor,
              mask: Tensor) -> Tensor:
        name = f'stage{stage}'
        if name in self.fusions:
            return self.fusions[name](visual, words, mask)
        return visual

    def extract_feat(self, inputs: Tensor, words: Tensor,
                     mask: Tensor) -> List[Tensor]:
        """Language-fused maps ``c_1..c_4``, ``[B, C_i, h_i, w_i]``."""
        if not self.early_fusion:
            feats = self.image_encoder(inputs)
            return [
                self._fuse(stage, feat, words, mask)
                for stage, feat in enumerate(feats)
            ]
        visual = self.image_encoder.visual
        x = visual.stem(inputs)
        feats = []
        for stage in range(len(self.visual_channels)):
            x = getattr(visual, f'layer{stage + 1}')(x)
            x = self._fuse(stage, x, words, mask)
            feats.append(x)
        return feats

    def side_outputs(self, inputs: Tensor,
                     data_samples: SampleList) -> List[Tensor]:
        """The head's side logits, coarse to fine, ``[B, 1, h_i, w_i]``."""
        words, mask = self.encode_text(data_samples)
        return self.decode_head(self.extract_feat(inputs, words, mask))

    def _forward(self,
                 inputs: Tensor,
                 data_samples: Optional[SampleList] = None) -> Tensor:
        """The final logits ``[B, 1, h, w]`` (finest decoder stage)."""
        return self.side_outputs(inputs, data_samples)[-1]

    def predict_response(self, inputs: Tensor,
                         data_samples: SampleList) -> Tensor:
        """Final logits (sigmoid at post-processing by default)."""
        return self._forward(inputs, data_samples)

    def loss(self, inputs: Tensor,
             data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_bce_side{i}`` per side output (coarse to fine) and the
        final output's accuracy on the valid pixels (``acc_seg``)."""
        sides = self.side_outputs(inputs, data_samples)
        if len(sides) != len(self.aux_weights):
            raise ValueError(f'{len(sides)} side outputs but '
                             f'{len(self.aux_weights)} aux_weights.')
        target = torch.stack(
            [sample.gt_sem_seg.data for sample in data_samples])[:, 0]
        losses = {}
        for i, (side, weight) in enumerate(zip(sides, self.aux_weights)):
            logits = F.interpolate(
                side, size=target.shape[-2:], mode='bilinear',
                align_corners=False)[:, 0]
            losses[f'loss_bce_side{i}'] = weight * masked_bce_with_logits(
                logits, target, self.ignore_index, self.loss_reduction)
        with torch.no_grad():
            valid = target != self.ignore_index
            correct = ((logits > 0) == (target == 1)) & valid
            losses['acc_seg'] = correct.sum() / valid.sum().clamp_min(1)
        return losses
