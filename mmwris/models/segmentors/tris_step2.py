from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from ..utils.staged_encoder import check_staged
from .base_ris import BaseRISSegmentor


@MODELS.register_module()
class TRISStep2Segmentor(BaseRISSegmentor):
    """TRIS step 2: a text-conditioned segmentation network trained on
    pseudo masks.

    Image encoder stages ``c_1..c_4``; the expression's word tokens (the
    text encoder's ``tokens``/``mask``) are fused into the stages of
    ``fusion_stages`` by a fusion layer (``fusion_cfg.type``); the top-down
    ``decode_head`` returns one logit map per stage (coarse to fine, the
    last is the prediction) and owns the deep-supervision loss.

    Args:
        image_encoder (dict): A :class:`StagedEncoder` for early fusion
            (``CLIPVisionEncoder`` on ResNet or ViT, ``StagedSwinTransformer``)
            or any backbone returning 4 maps with ``early_fusion=False``.
        text_encoder (dict): ``CLIPTextEncoder`` (or any text encoder of the
            contract); its ``tokens [T, L, C]`` and ``mask [T, L]`` are
            used. Its sentence projection, unused here, is frozen (DDP needs
            a gradient for every trainable parameter).
        decode_head (dict): ``TRISStep2Head`` or ``TRISStep2ReleasedHead``
            config (with ``loss_decode`` and ``aux_weights``).
        fusion_stages (Sequence[int]): 0-based stages of ``c_1..c_4``
            fused with the words (the paper: the last three).
        fusion_cfg (dict): The fusion layer: ``type`` (a registered layer
            called ``layer(visual, words, mask)``; default
            ``'PixelWordAttention'``: LAVT's PWAM with its gate and
            residual; ``'TRISPixelAttention'``: the released step 2's, with
            its options ``residual`` and ``use_word_mask``), ``channels``
            (int, list per stage, or None = the stage's visual channels)
            and the layer's other kwargs (``num_heads``, ``dropout``...).
            Each layer is built as ``type(visual_channels, text_channels,
            channels, **rest)``.
        early_fusion (bool): LAVT's order: a fused stage output is the
            *input of the next encoder stage* (the encoder runs stage by
            stage through the staged-encoder interface). False fuses the
            encoder's outputs independently (any backbone; the released
            step 2).
        visual_channels (Sequence[int], optional): Channels of ``c_1..c_4``;
            read from ``image_encoder.out_channels`` when None.
        text_channels (int, optional): Width of the word tokens; read from
            ``text_encoder.width`` when None.
        **kwargs: ``data_preprocessor``, ``train_cfg``, ``test_cfg``
            (``mask_decoder``, default sigmoid >= 0.5) and ``init_cfg``.
    """
    default_mask_decoder = dict(type='ThresholdMaskDecoder', norm='sigmoid',
                                threshold=0.5)

    def __init__(self,
                 image_encoder: ConfigType,
                 text_encoder: ConfigType,
                 decode_head: ConfigType,
                 fusion_stages: Sequence[int] = (1, 2, 3),
                 fusion_cfg: OptConfigType = None,
                 early_fusion: bool = True,
                 visual_channels: Optional[Sequence[int]] = None,
                 text_channels: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.build_encoders_and_head(image_encoder, text_encoder, decode_head)
        projection = getattr(self.text_encoder, 'text_projection', None)
        if projection is not None:
            projection.requires_grad_(False)
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
            check_staged(self.image_encoder, num_stages)
        fusion_cfg = dict(fusion_cfg or {})
        fusion_cfg.setdefault('type', 'PixelWordAttention')
        widths = fusion_cfg.pop('channels', None)
        if widths is None or isinstance(widths, int):
            widths = [widths] * num_stages
        self.fusions = nn.ModuleDict({
            f'stage{s}': MODELS.build(
                dict(fusion_cfg,
                     visual_channels=self.visual_channels[s],
                     text_channels=text_channels,
                     channels=widths[s] or self.visual_channels[s]))
            for s in self.fusion_stages
        })

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
        encoder = self.image_encoder
        if not self.early_fusion:
            return [
                self._fuse(stage, feat, words, mask)
                for stage, feat in enumerate(encoder(inputs))
            ]
        state = encoder.forward_stem(inputs)
        feats = []
        for stage in range(len(self.visual_channels)):
            state = encoder.forward_stage(stage, state)
            feat = self._fuse(stage, encoder.stage_feature(stage, state),
                              words, mask)
            state = encoder.replace_feature(stage, state, feat)
            feats.append(feat)
        return feats

    def _features(self, inputs: Tensor,
                  data_samples: SampleList) -> List[Tensor]:
        words, mask = self.encode_text(data_samples)
        return self.extract_feat(inputs, words, mask)

    def side_outputs(self, inputs: Tensor,
                     data_samples: SampleList) -> List[Tensor]:
        """The head's side logits, coarse to fine, ``[B, 1, h_i, w_i]``."""
        return self.decode_head(self._features(inputs, data_samples))

    def _forward(self,
                 inputs: Tensor,
                 data_samples: Optional[SampleList] = None) -> Tensor:
        """The final logits ``[B, 1, h, w]`` (finest decoder stage)."""
        return self.decode_head.predict(
            self._features(inputs, data_samples))

    def predict_response(self, inputs: Tensor,
                         data_samples: SampleList) -> Tensor:
        """Final logits (sigmoid in the default mask decoder)."""
        return self._forward(inputs, data_samples)

    def loss(self, inputs: Tensor,
             data_samples: SampleList) -> Dict[str, Tensor]:
        """The head's deep-supervision losses and ``acc_seg``."""
        return self.decode_head.loss(
            self._features(inputs, data_samples), data_samples)
