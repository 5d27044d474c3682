from typing import Dict, Sequence

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
    owns its losses (:meth:`loss`).

    Args:
        in_channels (Sequence[int]): Channels of the fused stage features,
            finest first. Set by the segmentor when None.
        pixel_decoder (dict): ``MSDeformAttnPixelDecoder`` kwargs (its
            ``in_channels`` is filled in).
        predictor (dict): ``MaskedAttentionDecoder`` kwargs (its
            ``in_channels`` and ``mask_dim`` are filled in from the pixel
            decoder).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 pixel_decoder: dict = dict(),
                 predictor: dict = dict(),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
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
        """The segmentation losses (not released; see
        ``docs/methods/magnet.md``)."""
        raise NotImplementedError(
            'MagNet training losses are not implemented yet (the release '
            'is inference only); see docs/methods/magnet.md.')
