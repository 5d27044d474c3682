"""Foundation models (CLIP, SAM): built offline, weights from local files
through one strict loader (:mod:`.checkpoint`)."""
from .checkpoint import list_keys, load_weights_strict, read_state_dict
from .bert import BertTextEncoder, build_bert, extended_attention_mask
from .clip import (CLIPTextEncoder, CLIPVisionEncoder, bpe_tokenizer,
                   bpe_word_ids, build_open_clip, clip_token_ids,
                   load_clip_weights)
from .clip_scorer import FrozenCLIPScorer
from .text_encoder import BaseTextEncoder
from .sam import (SAM_ARCHS, build_sam, build_sam_model, load_sam_weights,
                  sam_settings)

__all__ = [
    'BertTextEncoder', 'build_bert', 'extended_attention_mask',
    'BaseTextEncoder', 'CLIPTextEncoder', 'CLIPVisionEncoder',
    'FrozenCLIPScorer', 'SAM_ARCHS', 'bpe_tokenizer', 'bpe_word_ids',
    'build_open_clip', 'clip_token_ids', 'build_sam', 'build_sam_model',
    'list_keys', 'load_clip_weights', 'load_sam_weights',
    'load_weights_strict', 'read_state_dict', 'sam_settings'
]
