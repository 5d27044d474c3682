from typing import List, Optional

import torch
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from ..utils import gather_with_grad
from .base_ris import BaseRISSegmentor


@MODELS.register_module()
class TRISSegmentor(BaseRISSegmentor):
    """TRIS step 1: localisation learned from image-text pairs only.

    The segmentor encodes images and texts and dispatches: ``TRISHead``
    scores every image against every text of the (globally gathered) batch
    and owns the losses (classification against the identity, own text
    positive; calibration of each image's own map with a frozen CLIP
    against its expression and the sample's ``neg_texts``).

    Args:
        image_encoder (dict): Any MODELS backbone returning a tuple of
            feature maps (``CLIPVisionEncoder``, ``ResNetV1c``...).
        text_encoder (dict): A text encoder (``CLIPTextEncoder``) following
            the text-encoder contract (``sentence [T, D]`` is used).
        decode_head (dict): ``TRISHead`` config with its ``loss_cls`` and
            ``loss_cal``; its ``in_channels`` is the channel count of
            ``image_encoder``'s ``feature_index`` output.
        feature_index (int): Which backbone output feeds the head (-1: c4).
        gather_texts (bool): Score against the texts of all ranks (DDP).
        test_cfg (dict): ``mask_decoder`` (see :class:`BaseRISSegmentor`)
            and ``text_context``: ``'own'`` (default) scores each image
            with its own expression only, so a prediction does not depend on
            the rest of the test batch (the authors evaluate one expression
            at a time); ``'batch'`` takes the diagonal of the ``[B, B]``
            maps of the batch.
    """

    def __init__(self,
                 image_encoder: ConfigType,
                 text_encoder: ConfigType,
                 decode_head: ConfigType,
                 feature_index: int = -1,
                 gather_texts: bool = True,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
            test_cfg=test_cfg,
            train_cfg=train_cfg)
        self.build_encoders_and_head(image_encoder, text_encoder, decode_head)
        self.feature_index = feature_index
        self.gather_texts = gather_texts
        self.text_context = self.test_cfg.get('text_context', 'own')
        if self.text_context not in ('own', 'batch'):
            raise ValueError('test_cfg.text_context must be "own" or '
                             f'"batch", not "{self.text_context}".')

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """The ``feature_index`` backbone output ``[B, C, h, w]``."""
        feats = self.image_encoder(inputs)
        if isinstance(feats, (list, tuple)):
            return feats[self.feature_index]
        return feats

    def encode_text(self, texts: List[str]) -> Tensor:
        """Sentence embeddings ``[T, D]`` (tokenised once)."""
        return self.text_encoder(texts)['sentence']

    def encode_expressions(self, data_samples: SampleList) -> Tensor:
        """``[B, D]``: the samples' expressions, from the token ids the data
        pipeline packed when there are (:meth:`tokens_of`), else from
        ``text``."""
        tokens = self.tokens_of(data_samples)
        if tokens is None:
            return self.encode_text(self.texts_of(data_samples))
        return self.text_encoder.encode(tokens)['sentence']

    def _forward(self,
                 inputs: Tensor,
                 data_samples: Optional[SampleList] = None) -> Tensor:
        """``maps [B, T, h, w]``: every image against the batch's texts."""
        if data_samples is None:
            raise ValueError('TRISSegmentor needs data samples with texts.')
        visual = self.extract_feat(inputs)
        return self.decode_head(visual, self.encode_expressions(data_samples))

    def own_maps(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """``[B, 1, h, w]``: each image's response to its own expression."""
        if self.text_context == 'batch':
            maps = self._forward(inputs, data_samples)
            index = torch.arange(len(data_samples), device=maps.device)
            return maps[index, index][:, None]
        visual = self.extract_feat(inputs)
        return self.decode_head.predict(
            visual, self.encode_expressions(data_samples))

    def predict_response(self, inputs: Tensor,
                         data_samples: SampleList) -> Tensor:
        return self.own_maps(inputs, data_samples)

    def gather(self, sentence: Tensor):
        """The sentences of all ranks and this rank's offset in them."""
        if not self.gather_texts:
            return sentence, 0
        return gather_with_grad(sentence, return_offset=True)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """The head's losses (``loss_cls``, ``acc_cls``, calibration)."""
        visual = self.extract_feat(inputs)
        sentence, offset = self.gather(self.encode_expressions(data_samples))
        # Without a calibration loss no un-normalised copy of the batch.
        images = None if getattr(self.decode_head, 'loss_cal', None) is None \
            else self.calibration_images(inputs)
        return self.decode_head.loss(visual, sentence, data_samples, images,
                                     offset)

    def calibration_images(self, inputs: Tensor) -> Tensor:
        """The images the calibration multiplies by the map: RGB in [0, 1]
        (:meth:`unit_rgb`), or the network input itself when the head's
        ``loss_cal.fg_image == 'network_input'`` (the released TRIS)."""
        loss_cal = getattr(self.decode_head, 'loss_cal', None)
        if getattr(loss_cal, 'fg_image', 'rgb') == 'network_input':
            return inputs
        return self.unit_rgb(inputs)

    def unit_rgb(self, inputs: Tensor) -> Tensor:
        """Undo the data preprocessor: ``[B, 3, H, W]`` RGB in [0, 1].

        Inputs are un-normalised with the preprocessor's mean/std; they are
        taken as BGR (mmcv's loading order) only when an image preprocessor
        explicitly has ``bgr_to_rgb=False``.
        """
        preprocessor = self.data_preprocessor
        images = inputs
        if getattr(preprocessor, '_enable_normalize', False):
            images = images * preprocessor.std + preprocessor.mean
        if getattr(preprocessor, '_channel_conversion', True) is False:
            images = images.flip(1)
        return (images / 255.0).clamp(0, 1)
