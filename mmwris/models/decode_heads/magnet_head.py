from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmwris.registry import MODELS


@MODELS.register_module()
class MagNetHead(BaseModule):
    """MagNet's decoder: a deformable-attention pixel decoder over the four
    fused stage features and a one-query masked-attention decoder
    (Mask2Former), as released.

    The response is the mask logit map of the last prediction at the
    finest feature's resolution (stride 4); the class logits cannot change
    it (with one query, the released ``softmax`` over the query axis is
    always 1), but they are computed for the training losses. The head
    owns its losses (:meth:`loss`, not released; ours follow Mask2Former
    with one query and one target: mask BCE + dice + the class term on
    every prediction, i.e. deep supervision over the decoder layers).

    Args:
        in_channels (Sequence[int]): Channels of the fused stage features,
            finest first. Set by the segmentor when None.
        pixel_decoder (dict): ``MSDeformAttnPixelDecoder`` kwargs (its
            ``in_channels`` is filled in).
        predictor (dict): ``MaskedAttentionDecoder`` kwargs (its
            ``in_channels`` and ``mask_dim`` are filled in from the pixel
            decoder).
        loss_mask (dict): Per-pixel mask loss on the logits up-sampled to
            the target (default ``MaskedBCELoss``, weight 5, Mask2Former's).
        loss_dice (dict): Dice loss (default ``MaskDiceLoss``, weight 5).
        loss_cls_weight (float): Weight of the class term: cross-entropy
            of the (one, always matched) query against the object class
            (Mask2Former: 2).
        deep_supervision (bool): Supervise every prediction (the one
            before the first decoder layer and after each layer, suffix
            ``_d{k}``) and not only the last.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 pixel_decoder: dict = dict(),
                 predictor: dict = dict(),
                 loss_mask: dict = dict(type='MaskedBCELoss', loss_weight=5.0,
                                        loss_name='loss_mask'),
                 loss_dice: dict = dict(type='MaskDiceLoss', loss_weight=5.0,
                                        loss_name='loss_dice'),
                 loss_cls_weight: float = 2.0,
                 deep_supervision: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_cls_weight = float(loss_cls_weight)
        self.deep_supervision = deep_supervision
        pixel_decoder = dict(type='MSDeformAttnPixelDecoder',
                             **pixel_decoder)
        pixel_decoder['in_channels'] = list(in_channels)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        predictor = dict(type='MaskedAttentionDecoder', **predictor)
        predictor.setdefault('in_channels', self.pixel_decoder.conv_dim)
        predictor.setdefault('mask_dim',
                             self.pixel_decoder.mask_features.out_channels)
        self.predictor = MODELS.build(predictor)

    def forward(self, features: Sequence[Tensor]) -> Dict[str, object]:
        """``features`` (``[B, C_i, H_i, W_i]``, finest first) -> the
        predictor's dict (``pred_logits``, ``pred_masks``, ``all_logits``,
        ``all_masks``) plus the pixel decoder's ``mask_features`` and
        ``multi_scale``."""
        pixels = self.pixel_decoder(features)
        out = self.predictor(pixels['multi_scale'], pixels['mask_features'])
        out.update(mask_features=pixels['mask_features'],
                   multi_scale=pixels['multi_scale'])
        return out

    def predict(self, features: Sequence[Tensor]) -> Tensor:
        """The response ``[B, 1, h, w]``: the first query's mask logits."""
        return self.forward(features)['pred_masks'][:, :1]

    def loss(self, features: Sequence[Tensor], data_samples) -> dict:
        """Mask, dice and class losses of the predictions against each
        sample's ``gt_sem_seg`` (0/1, 255 ignored).

        The mask logits ``[B, 1, h, w]`` are up-sampled (bilinear,
        ``align_corners=True``, as at inference) to the target's size. The
        one query is always matched to the referred object (class 0).
        Keys: ``loss_mask``, ``loss_dice``, ``loss_cls`` for the final
        prediction, ``..._d{k}`` for prediction ``k`` before it (deep
        supervision), and ``acc_seg``.
        """
        out = self.forward(features)
        target = torch.stack(
            [sample.gt_sem_seg.data for sample in data_samples])[:, 0]
        predictions = list(zip(out['all_logits'], out['all_masks']))
        if not self.deep_supervision:
            predictions = predictions[-1:]
        losses = {}
        for index, (logits, masks) in enumerate(predictions):
            suffix = '' if index == len(predictions) - 1 else f'_d{index}'
            masks = F.interpolate(masks[:, :1], size=target.shape[-2:],
                                  mode='bilinear', align_corners=True)[:, 0]
            losses[self.loss_mask.loss_name + suffix] = self.loss_mask(
                masks, target)
            losses[self.loss_dice.loss_name + suffix] = self.loss_dice(
                masks, target)
            if self.loss_cls_weight:
                objects = logits.new_zeros(logits.shape[:2],
                                           dtype=torch.long)
                losses['loss_cls' + suffix] = self.loss_cls_weight * \
                    F.cross_entropy(logits.flatten(0, 1), objects.flatten())
        with torch.no_grad():
            valid = target != self.loss_mask.ignore_index
            correct = ((masks > 0) == (target == 1)) & valid
            losses['acc_seg'] = correct.sum() / valid.sum().clamp_min(1)
        return losses
