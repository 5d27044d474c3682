from typing import Dict, Optional, Sequence

import torch
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from ..decode_heads.response_head import neg_texts_of
from ..foundation.frozen_sam import FrozenSAM  # noqa: F401 (registers it)
from .tris import TRISSegmentor


@MODELS.register_module()
class PPTSegmentor(TRISSegmentor):
    """PPT: CLIP response -> point generator -> frozen SAM -> mask.

    Encodes images and texts with the CLIP towers (as
    :class:`TRISSegmentor`); the head (:class:`PPTHead`) gives the own
    response and the positive/negative points and owns every loss; the
    frozen SAM (:class:`FrozenSAM`, outside the module tree and the state
    dict) turns points into masks, both for the mask-level losses and in
    the mask step (``test_cfg.mask_decoder``: ``PointPromptSAMDecoder``,
    or ``ResponsePeakSAMDecoder`` for the naive baseline). A head with no
    point generator (``TRISHead``) is accepted: then only the response
    exists (the naive CLIP-peak -> SAM baseline on TRIS step-1 responses).

    SAM image embeddings are computed once per image and batch, without
    gradient, unless the sample carries a precomputed ``sam_embedding``.

    Args:
        image_encoder, text_encoder, decode_head, feature_index,
            gather_texts: As :class:`TRISSegmentor`.
        sam (dict): ``FrozenSAM`` config (``arch``, ``checkpoint``).
        frozen_encoders (Sequence[str]): Submodules kept frozen (no
            gradient, eval mode): ``'image_encoder'``, ``'text_encoder'``.
            The configs freeze both CLIP towers: only the point generator
            (and the response branch of the head) trains.
    """
    default_mask_decoder = dict(type='PointPromptSAMDecoder')

    def __init__(self,
                 image_encoder: ConfigType,
                 text_encoder: ConfigType,
                 decode_head: ConfigType,
                 sam: ConfigType,
                 feature_index: int = -1,
                 gather_texts: bool = True,
                 frozen_encoders: Sequence[str] = (),
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(
            image_encoder=image_encoder, text_encoder=text_encoder,
            decode_head=decode_head, feature_index=feature_index,
            gather_texts=gather_texts, data_preprocessor=data_preprocessor,
            train_cfg=train_cfg, test_cfg=test_cfg, init_cfg=init_cfg)
        sam = dict(sam)
        sam.setdefault('type', 'FrozenSAM')
        self.sam = MODELS.build(sam)
        self.frozen_encoders = tuple(frozen_encoders)
        for name in self.frozen_encoders:
            if name not in ('image_encoder', 'text_encoder'):
                raise ValueError(f'frozen_encoders: unknown "{name}" (use '
                                 '"image_encoder", "text_encoder").')
            getattr(self, name).requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in getattr(self, 'frozen_encoders', ()):
            getattr(self, name).eval()
        return self

    @property
    def uses_sam_decoder(self) -> bool:
        return getattr(self.mask_decoder, 'needs_sam', False)

    def sam_embeddings(self, inputs: Tensor,
                       data_samples: Optional[SampleList]) -> Tensor:
        """SAM embeddings of the batch (precomputed ones when present)."""
        return self.sam.embeddings(self.unit_rgb(inputs), data_samples)

    def head_outputs(self, inputs: Tensor,
                     data_samples: SampleList) -> Dict[str, Tensor]:
        """``response`` (and, with a PPTHead, ``heat``, ``points``,
        ``labels``) of each image for its own expression."""
        if data_samples is None:
            raise ValueError('PPTSegmentor needs data samples with texts.')
        visual = self.extract_feat(inputs)
        sentence = self.encode_expressions(data_samples)
        if hasattr(self.decode_head, 'generate'):
            return self.decode_head.generate(visual, sentence)
        return dict(response=self.decode_head.predict(visual, sentence))

    def predict_response(self, inputs: Tensor,
                         data_samples: SampleList) -> Tensor:
        """SAM's mask logits ``[B, 1, H, W]`` on the network-input grid
        (with a SAM mask decoder), else the raw own response."""
        outputs = self.head_outputs(inputs, data_samples)
        if not self.uses_sam_decoder:
            return outputs['response']
        return self.mask_decoder.sam_logits(
            self.sam, self.sam_embeddings(inputs, data_samples), outputs,
            inputs.shape[-2:])

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        visual = self.extract_feat(inputs)
        sentence, offset = self.gather(self.encode_expressions(data_samples))
        images = self.calibration_images(inputs)
        head = self.decode_head
        if not hasattr(head, 'generate'):
            return head.loss(visual, sentence, data_samples, images, offset)
        neg_sentence = None
        if head.needs_negative_texts:
            neg_sentence = self.encode_negatives(neg_texts_of(data_samples))
        cache = {}

        def sam_embeddings():
            if 'emb' not in cache:
                cache['emb'] = self.sam_embeddings(inputs, data_samples)
            return cache['emb']

        return head.loss(visual, sentence, data_samples, images, offset,
                         neg_sentence=neg_sentence, sam=self.sam,
                         sam_embeddings=sam_embeddings)

    @torch.no_grad()
    def encode_negatives(self, neg_texts):
        """Per image, the embeddings ``[K_b, D]`` of its negatives (None
        for an image without any), encoded in one call."""
        flat = [text for texts in neg_texts for text in texts]
        if not flat:
            return [None] * len(neg_texts)
        encoded = self.encode_text(flat)
        out, start = [], 0
        for texts in neg_texts:
            out.append(encoded[start:start + len(texts)] if texts else None)
            start += len(texts)
        return out
