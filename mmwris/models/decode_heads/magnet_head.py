from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmwris.registry import MODELS
from ..layers.mask_grounding import mask_tokens


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
        mask_grounding (dict, optional): Enables Mask Grounding:
            ``ratio`` (share of word tokens masked, default 0.15),
            ``replace`` ((p_mask, p_random), default (0.8, 0.1)) and the
            ``MaskGroundingBranch`` kwargs (``embed_dims``, ``num_layers``,
            ``num_heads``, ``ffn_dims``, ``loss_weight``).
        alignment (dict, optional): Enables the cross-modal alignment loss
            (``CrossModalAlignmentLoss`` kwargs) on the mask features and
            the final ``[CLS]`` word feature.
        text_channels (int, optional): Word width (set by the segmentor).
        vocab_size (int, optional): Vocabulary size (set by the segmentor).
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
                 mask_grounding: Optional[dict] = None,
                 alignment: Optional[dict] = None,
                 text_channels: Optional[int] = None,
                 vocab_size: Optional[int] = None,
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
        self.mask_grounding = self.alignment = None
        if mask_grounding is not None:
            mask_grounding = dict(mask_grounding)
            self.mask_ratio = float(mask_grounding.pop('ratio', 0.15))
            self.mask_replace = tuple(mask_grounding.pop('replace',
                                                         (0.8, 0.1)))
            self.mask_grounding = MODELS.build(dict(
                type='MaskGroundingBranch', text_channels=text_channels,
                visual_channels=list(in_channels)[-1],
                vocab_size=vocab_size, **mask_grounding))
        if alignment is not None:
            self.alignment = MODELS.build(dict(
                type='CrossModalAlignmentLoss',
                pixel_channels=self.pixel_decoder.mask_features.out_channels,
                text_channels=text_channels, **alignment))

    @property
    def uses_words(self) -> bool:
        """Whether a loss reads the final word features."""
        return self.mask_grounding is not None or self.alignment is not None

    def corrupt_tokens(self, tokenized: Dict[str, Tensor], mask_id: int,
                       vocab_size: int) -> Tuple[Dict[str, Tensor], Tensor]:
        """Mask Grounding's masked expression and its labels."""
        ids, labels = mask_tokens(tokenized['ids'], tokenized['mask'],
                                  self.mask_ratio, mask_id,
                                  vocab_size=vocab_size,
                                  replace=self.mask_replace)
        return dict(tokenized, ids=ids), labels

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

    def loss(self, features: Sequence[Tensor], data_samples,
             words: Optional[Tensor] = None,
             grounding: Optional[dict] = None) -> dict:
        """Mask, dice and class losses of the predictions against each
        sample's ``gt_sem_seg`` (0/1, 255 ignored).

        The mask logits ``[B, 1, h, w]`` are up-sampled (bilinear,
        ``align_corners=True``, as at inference) to the target's size. The
        one query is always matched to the referred object (class 0).
        Keys: ``loss_mask``, ``loss_dice``, ``loss_cls`` for the final
        prediction, ``..._d{k}`` for prediction ``k`` before it (deep
        supervision), and ``acc_seg``; with the alignment loss
        ``loss_align_p2t`` / ``loss_align_p2p`` (needs ``words``, the final
        word features ``[B, N, Lw]``); with Mask Grounding ``loss_mg`` and
        ``acc_mg`` (``grounding``: ``words`` and ``visual`` of the masked
        pass, ``labels`` and ``word_embeddings``).
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
        if self.alignment is not None:
            losses.update(self.alignment(out['mask_features'], words[:, 0],
                                         target))
        if self.mask_grounding is not None:
            gt = target.masked_fill(target == self.loss_mask.ignore_index, 0)
            losses.update(self.mask_grounding.loss(
                grounding['words'], grounding['visual'], gt,
                grounding['word_embeddings'], grounding['labels']))
        with torch.no_grad():
            valid = target != self.loss_mask.ignore_index
            correct = ((masks > 0) == (target == 1)) & valid
            losses['acc_seg'] = correct.sum() / valid.sum().clamp_min(1)
        return losses
