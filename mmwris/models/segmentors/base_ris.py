from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import BaseSegmentor
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from mmwris.structures import fields
from ..foundation.clip import bpe_word_ids

LEGACY_TEST_KEYS = ('mask_threshold', 'response_norm', 'predict_mode')


def prime_bpe_cache(data_samples: Optional[SampleList]) -> None:
    """Fill the process's CLIP BPE cache with the ids the data workers
    packed (``PackRISInputs(tokenize=...)``), if any."""
    for sample in data_samples or []:
        ids_of = sample.metainfo.get(fields.BPE_WORD_IDS) if hasattr(
            sample, 'metainfo') else None
        if ids_of:
            bpe_word_ids.prime(ids_of)


class BaseRISSegmentor(BaseSegmentor):
    """Base class of referring segmentors: one response map per (image, text).

    Subclasses produce raw response maps ``[B, 1, h, w]`` aligned with the
    (padded) network input (:meth:`predict_response`); the mask decoder
    (``test_cfg.mask_decoder``, a registered :class:`BaseMaskDecoder`)
    removes padding, resizes them to each image's original size and turns
    them into ``seg_logits`` and the binary ``pred_sem_seg``.

    Args:
        test_cfg (dict): ``mask_decoder`` (dict): the decoder config,
            default :attr:`default_mask_decoder` of the class.
        train_cfg (dict): ``channels_last`` (bool, default False): run the
            model and its inputs in the channels-last memory format (faster
            convolutions on GPUs with tensor cores; the outputs are the
            same). ``tools/train.py --channels-last`` sets it.
    """
    default_mask_decoder = dict(type='ThresholdMaskDecoder',
                                norm='minmax',
                                threshold=0.5)

    def __init__(self,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 train_cfg: OptConfigType = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        legacy = [k for k in LEGACY_TEST_KEYS if k in self.test_cfg]
        if legacy:
            raise ValueError(
                f'test_cfg keys {legacy} were replaced by test_cfg.'
                'mask_decoder: e.g. mask_decoder=dict(type='
                '"ThresholdMaskDecoder", norm="minmax", threshold=0.5), or '
                'dict(type="PeakProposalMaskDecoder", output="both") for '
                'PCNet\'s proposal prediction.')
        self.mask_decoder = MODELS.build(
            self.test_cfg.get('mask_decoder', self.default_mask_decoder))
        self.align_corners = False
        self.channels_last = bool(self.train_cfg.get('channels_last', False))
        self._in_channels_last = False

    def forward(self, inputs: Tensor, data_samples: SampleList = None,
                mode: str = 'tensor'):
        """``BaseSegmentor.forward``; with ``train_cfg.channels_last`` the
        parameters (once, on the first call) and the inputs are put in the
        channels-last memory format first. BPE ids the data workers packed
        (``bpe_word_ids``) fill this process's BPE cache first."""
        prime_bpe_cache(data_samples)
        if self.channels_last and isinstance(inputs, Tensor) \
                and inputs.dim() == 4:
            if not self._in_channels_last:
                self.to(memory_format=torch.channels_last)
                self._in_channels_last = True
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return super().forward(inputs, data_samples, mode)

    def build_encoders_and_head(self, image_encoder: ConfigType,
                                text_encoder: ConfigType,
                                decode_head: ConfigType) -> None:
        """Build ``image_encoder``, ``text_encoder`` and ``decode_head``
        (in this order: it fixes their random initialisation)."""
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        self.decode_head = MODELS.build(decode_head)

    @staticmethod
    def texts_of(data_samples: SampleList) -> List[str]:
        """The expression of every sample, in batch order."""
        return [sample.metainfo[fields.TEXT] for sample in data_samples]

    def tokens_of(self, data_samples: SampleList
                  ) -> Optional[Dict[str, Tensor]]:
        """The token ids the data pipeline packed
        (``PackRISInputs(tokenize=...)``): ``dict(ids=[B, L], mask=[B, L])``,
        or None when a sample has none, the text encoder is not a CLIP one
        (``reads_packed_clip_ids``), or their length or truncation rule
        is not the text encoder's ``context_length`` / ``keep_eot`` (the
        model then tokenises ``text``)."""
        if not data_samples or not all('text_ids' in sample
                                       for sample in data_samples):
            return None
        encoder = getattr(self, 'text_encoder', None)
        if not getattr(encoder, 'reads_packed_clip_ids', False):
            return None
        keep_eot = getattr(encoder, 'keep_eot', None)
        if keep_eot is not None and any(
                bool(sample.get('text_keep_eot', True)) != keep_eot
                for sample in data_samples):
            return None
        ids = torch.stack([sample.text_ids for sample in data_samples])
        length = getattr(encoder, 'context_length', None)
        if length is not None and ids.shape[1] != length:
            return None
        mask = torch.stack([sample.text_mask for sample in data_samples])
        return dict(ids=ids, mask=mask)

    def postprocess_response(self, response: Tensor,
                             data_samples: SampleList) -> SampleList:
        """Fill ``seg_logits`` and ``pred_sem_seg`` at the original size.

        Args:
            response (Tensor): ``[B, 1, H, W]`` raw responses aligned with
                the padded input batch (any H, W: they are rescaled).
            data_samples (list[SegDataSample]): Samples with ``img_shape``,
                ``ori_shape`` and optionally ``padding_size``/``pad_shape``.
        """
        return self.mask_decoder.decode_batch(response, data_samples)

    def predict_response(self, inputs: Tensor,
                         data_samples: SampleList) -> Tensor:
        """Raw ``[B, 1, h, w]`` response of each image to its expression."""
        raise NotImplementedError

    def predict(self,
                inputs: Tensor,
                data_samples: SampleList = None) -> SampleList:
        """Fill ``seg_logits`` / ``pred_sem_seg`` at each original size."""
        return self.postprocess_response(
            self.predict_response(inputs, data_samples), data_samples)

    def encode_decode(self, inputs: Tensor,
                      batch_data_samples: SampleList) -> Tensor:
        """The response resized to the input, ``[B, 1, H, W]``."""
        return F.interpolate(self.predict_response(inputs, batch_data_samples),
                             size=inputs.shape[-2:],
                             mode='bilinear',
                             align_corners=False)

    def extract_feat(self, inputs: Tensor):
        raise NotImplementedError

    def _forward(self, inputs: Tensor, data_samples: SampleList = None):
        raise NotImplementedError
