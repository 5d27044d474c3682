from typing import Dict, List

import torch.nn as nn
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from ..utils.staged_encoder import check_staged
from .base_ris import BaseRISSegmentor


def per_stage(cfg: dict, index: int) -> dict:
    """``cfg`` with a per-stage ``num_heads`` list resolved for stage
    ``index`` (the released ``num_heads_fusion``)."""
    heads = cfg.get('num_heads')
    if isinstance(heads, (list, tuple)):
        return dict(cfg, num_heads=heads[index])
    return cfg


@MODELS.register_module()
class MagNetSegmentor(BaseRISSegmentor):
    """MagNet (Mask Grounding, CVPR'24): two-way early fusion between a
    staged Swin and a block-wise BERT, then a one-query Mask2Former.

    For every stage ``i`` (released order): the Swin blocks give ``x_i``
    and BERT block ``i`` gives ``l_i``; the image fusion
    (``MagNetImageFusion``) turns ``(x_i, l_i)`` into the decoder feature
    ``s_i`` and the gated map that the next stage merges; the text fusion
    (``MagNetTextFusion``) turns ``(l_i, x_i)`` into the next block's
    words. ``decode_head`` (``MagNetHead``) decodes ``s_1..s_4``.

    Args:
        image_encoder (dict): A staged encoder (``MagNetSwinTransformer``).
        text_encoder (dict): ``BertTextEncoder`` (blocks of layers; one
            block per image stage).
        decode_head (dict): ``MagNetHead`` (``in_channels`` filled in).
        image_fusion (dict): ``MagNetImageFusion`` kwargs other than the
            channels (``pool_sizes``, ``reduction``, ``num_heads``: an int
            or one per stage, ``dropout``).
        text_fusion (dict): ``MagNetTextFusion`` kwargs other than the
            channels (``num_heads``: an int or one per stage, ``dropout``,
            ``mask_mode``).
        **kwargs: ``data_preprocessor``, ``train_cfg``, ``test_cfg``
            (``mask_decoder``, default ``MagNetMaskDecoder``) and
            ``init_cfg``.
    """
    default_mask_decoder = dict(type='MagNetMaskDecoder')

    def __init__(self,
                 image_encoder: ConfigType,
                 text_encoder: ConfigType,
                 decode_head: ConfigType,
                 image_fusion: OptConfigType = None,
                 text_fusion: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg, test_cfg=test_cfg,
                         train_cfg=train_cfg)
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        stages = self.text_encoder.num_blocks
        check_staged(self.image_encoder, stages)
        channels = list(self.image_encoder.out_channels)[:stages]
        width = self.text_encoder.width
        image_fusion = dict(type='MagNetImageFusion', **(image_fusion or {}))
        text_fusion = dict(type='MagNetTextFusion', **(text_fusion or {}))
        self.image_fusions = nn.ModuleList(
            MODELS.build(dict(per_stage(image_fusion, i), channels=c,
                              text_channels=width))
            for i, c in enumerate(channels))
        self.text_fusions = nn.ModuleList(
            MODELS.build(dict(per_stage(text_fusion, i), text_channels=width,
                              visual_channels=c))
            for i, c in enumerate(channels))
        self.decode_head = MODELS.build(dict(
            decode_head, in_channels=channels, text_channels=width,
            vocab_size=self.text_encoder.vocab_size))
        self.freeze_unused()

    def freeze_unused(self) -> None:
        """Freeze what no loss reaches (DDP needs a gradient for every
        trainable parameter): the last stage's gate (its gated map has no
        next stage) and, unless Mask Grounding or the alignment loss reads
        the final words, the last text fusion (the decoder reads only the
        image features). They stay in the state dict (released keys)."""
        unused = [self.image_fusions[-1].gate]
        if not self.decode_head.uses_words:
            unused.append(self.text_fusions[-1])
        for module in unused:
            for param in module.parameters():
                param.requires_grad = False

    def tokenize(self, data_samples: SampleList) -> Dict[str, Tensor]:
        return self.text_encoder.tokenize(self.texts_of(data_samples))

    def extract_feat(self, inputs: Tensor,
                     tokenized: Dict[str, Tensor]) -> Dict[str, object]:
        """The fused stage features ``s_1..s_4`` (finest first), the final
        words ``[B, N, Lw]`` and the token mask ``[B, N]``."""
        mask = tokenized['mask'].to(inputs.device)
        words, extended = self.text_encoder.forward_stem(
            tokenized['ids'].to(inputs.device), mask)
        state = self.image_encoder.forward_stem(inputs)
        features: List[Tensor] = []
        for index, (image_fusion, text_fusion) in enumerate(
                zip(self.image_fusions, self.text_fusions)):
            state = self.image_encoder.forward_stage(index, state)
            visual = self.image_encoder.stage_feature(index, state)
            words = self.text_encoder.forward_block(index, words, extended)
            feature, gated = image_fusion(visual, words, mask)
            words = text_fusion(words, visual, mask)
            features.append(feature)
            state = self.image_encoder.replace_feature(index, state, gated)
        return dict(features=features, words=words, mask=mask)

    def predict_response(self, inputs: Tensor,
                         data_samples: SampleList) -> Tensor:
        """Mask logits ``[B, 1, H / 4, W / 4]``."""
        feats = self.extract_feat(inputs, self.tokenize(data_samples))
        return self.decode_head.predict(feats['features'])

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """The head's losses. With Mask Grounding, a second pass encodes
        the masked expressions with the image (the segmentation losses use
        the unmasked pass)."""
        tokenized = self.tokenize(data_samples)
        feats = self.extract_feat(inputs, tokenized)
        grounding = None
        if self.decode_head.mask_grounding is not None:
            masked, labels = self.decode_head.corrupt_tokens(
                tokenized, self.text_encoder.mask_token_id,
                self.text_encoder.vocab_size)
            masked_feats = self.extract_feat(inputs, masked)
            grounding = dict(
                words=masked_feats['words'],
                visual=masked_feats['features'][-1],
                labels=labels.to(inputs.device),
                word_embeddings=self.text_encoder.word_embeddings)
        return self.decode_head.loss(feats['features'], data_samples,
                                     words=feats['words'],
                                     grounding=grounding)

    def _forward(self, inputs: Tensor, data_samples: SampleList = None):
        return self.predict_response(inputs, data_samples)
