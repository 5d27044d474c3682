"""BERT text encoder (HuggingFace ``transformers``), built offline.

The architecture comes from a ``BertConfig`` (``bert-base-uncased``'s by
default); weights only from a local file, through the strict loader of
:mod:`.checkpoint`; the WordPiece vocabulary from a local ``vocab.txt``.
Nothing is downloaded.

Besides the text-encoder contract (``tokenize``/``encode``/``forward`` ->
``tokens``, ``mask``, ``sentence``), the encoder runs in **blocks** of
layers (``block_layers``), so that early-fusion models (MagNet, LAVT) can
change the word features between blocks::

    words, ext = encoder.forward_stem(ids, mask)
    for i in range(encoder.num_blocks):
        words = encoder.forward_block(i, words, ext)
        words = fuse(words)
"""
import math
import re
import string
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmwris.registry import MODELS
from .checkpoint import list_keys, read_state_dict
from .text_encoder import BaseTextEncoder

# bert-base-uncased (= BertConfig() defaults).
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072,
                 max_position_embeddings=512, type_vocab_size=2)
# The extended attention mask of BERT (HF 2020): padding keys get -10000.
MASK_VALUE = -10000.0


CHARS = 'chars'


def character_vocab() -> Dict[str, int]:
    """A WordPiece vocabulary of single characters for runs without
    downloaded files (toy data): ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``,
    ``[MASK]`` at bert-base-uncased's ids (0, 100-103, the other ids below
    104 unused), then lower-case letters, digits and punctuation, alone
    and as ``##`` continuations (240 entries): every word splits into its
    characters."""
    tokens = [f'[unused{i}]' for i in range(104)]
    for index, token in ((0, '[PAD]'), (100, '[UNK]'), (101, '[CLS]'),
                         (102, '[SEP]'), (103, '[MASK]')):
        tokens[index] = token
    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokens += list(chars) + ['##' + c for c in chars]
    return {token: index for index, token in enumerate(tokens)}


def build_bert(config: Optional[dict] = None) -> nn.Module:
    """A randomly initialised ``transformers.BertModel`` without pooler
    (eager attention: the arithmetic of the reference implementation)."""
    from transformers import BertConfig, BertModel
    cfg = BertConfig(**dict(BERT_BASE, **(config or {})))
    cfg._attn_implementation = 'eager'
    return BertModel(cfg, add_pooling_layer=False)


def extended_attention_mask(mask: Tensor, dtype=torch.float32) -> Tensor:
    """``mask [T, L]`` (1/True = token) -> ``[T, 1, 1, L]`` additive mask,
    0 on tokens and -10000 on padding (BERT's)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * MASK_VALUE


def bert_state_dict(path: str) -> Dict[str, Tensor]:
    """A local BERT checkpoint as ``BertModel`` keys.

    Reads ``.safetensors`` or torch files (``pytorch_model.bin``); strips a
    ``bert.`` prefix, renames the old ``LayerNorm.gamma`` / ``beta`` to
    ``weight`` / ``bias`` and drops the pooler, the pre-training heads
    (``cls.*``) and the ``position_ids`` / ``token_type_ids`` buffers.
    """
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state_dict = load_file(path, device='cpu')
    else:
        state_dict, _ = read_state_dict(path, 'BERT')
    out = {}
    for key, value in state_dict.items():
        key = key[len('bert.'):] if key.startswith('bert.') else key
        if key.startswith(('pooler.', 'cls.')) or key.endswith(
                ('position_ids', 'token_type_ids')):
            continue
        key = re.sub(r'LayerNorm\.gamma$', 'LayerNorm.weight', key)
        key = re.sub(r'LayerNorm\.beta$', 'LayerNorm.bias', key)
        out[key] = value
    return out


def load_bert_weights(encoder: nn.Module, path: str) -> None:
    """Load :func:`bert_state_dict` into ``encoder`` strictly (an error
    names the missing, unexpected and wrongly shaped keys)."""
    state_dict = bert_state_dict(path)
    own = encoder.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [k for k in own if k in state_dict
                  and state_dict[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise RuntimeError(
            f'The BERT weights in "{path}" do not match the configured '
            f'BERT. Missing keys {list_keys(missing)}; unexpected keys '
            f'{list_keys(unexpected)}; shape mismatches '
            f'{list_keys(mismatched)}.')
    encoder.load_state_dict(state_dict, strict=True)


@MODELS.register_module()
class BertTextEncoder(BaseTextEncoder, BaseModule):
    """BERT through the text-encoder contract, runnable block by block.

    ``tokens`` are the last hidden states ``[T, L, H]``, ``mask`` is True
    on real tokens, ``sentence`` is the hidden state of ``[CLS]`` (there is
    no pooler). Tokenisation is the released LAVT/MagNet one: WordPiece
    ``[CLS] ... [SEP]``, then the first ``context_length`` ids (a long
    expression loses its ``[SEP]``), zero padded.

    Args:
        config (dict, optional): ``BertConfig`` fields over bert-base.
        vocab_file (str, optional): Local WordPiece ``vocab.txt``, or
            ``'chars'``: :func:`character_vocab` (toy runs). Needed only to
            tokenise strings.
        pretrained (str, optional): Local weights file (HF
            ``pytorch_model.bin`` or ``.safetensors``; see
            :func:`bert_state_dict`), loaded strictly.
        context_length (int): Tokens per expression (20 in MagNet).
        block_layers (Sequence[int]): The end layer (exclusive) of each
            block, e.g. ``(3, 6, 9, 12)``: four blocks of three layers.
            Its last entry must be the number of layers.
        lower_case (bool): Lower-case before WordPiece (uncased BERT).
        frozen (bool): Freeze every parameter and stay in eval mode.
    """

    def __init__(self,
                 config: Optional[dict] = None,
                 vocab_file: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 context_length: int = 20,
                 block_layers: Sequence[int] = (3, 6, 9, 12),
                 lower_case: bool = True,
                 frozen: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        bert = build_bert(config)
        self.embeddings = bert.embeddings
        self.encoder = bert.encoder
        num_layers = len(self.encoder.layer)
        block_layers = [int(b) for b in block_layers]
        if (not block_layers or block_layers[-1] != num_layers
                or sorted(set(block_layers)) != block_layers
                or block_layers[0] <= 0):
            raise ValueError('block_layers must increase and end at the '
                             f'number of layers ({num_layers}), got '
                             f'{block_layers}.')
        positions = bert.config.max_position_embeddings
        if not 2 < context_length <= positions:
            raise ValueError(f'context_length must be in 3..{positions}, '
                             f'got {context_length}.')
        self.block_layers = block_layers
        self.context_length = context_length
        self.width = self.embed_dim = bert.config.hidden_size
        self.vocab_file = vocab_file
        self.lower_case = lower_case
        self._tokenizer = None
        self.frozen = frozen
        if pretrained:
            load_bert_weights(self, pretrained)
        if frozen:
            for param in self.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        return super().train(mode and not self.frozen)

    @property
    def vocab_size(self) -> int:
        return self.embeddings.word_embeddings.num_embeddings

    @property
    def word_embeddings(self) -> Tensor:
        """``[V, H]``, e.g. for a tied language-model head."""
        return self.embeddings.word_embeddings.weight

    @property
    def mask_token_id(self) -> int:
        """The id of ``[MASK]`` (103 in bert-base-uncased and the built-in
        character vocabulary)."""
        if self.vocab_file:
            return self.tokenizer.mask_token_id
        return 103

    @property
    def num_blocks(self) -> int:
        return len(self.block_layers)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            if not self.vocab_file:
                raise ValueError('BertTextEncoder needs vocab_file (a local '
                                 'vocab.txt) to tokenise strings.')
            from transformers import BertTokenizer
            vocab = (character_vocab()
                     if self.vocab_file == CHARS else self.vocab_file)
            self._tokenizer = BertTokenizer(vocab,
                                            do_lower_case=self.lower_case)
        return self._tokenizer

    def tokenize(self, texts: List[str]) -> Dict[str, Tensor]:
        length = self.context_length
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for row, text in enumerate(texts):
            tokens = self.tokenizer.encode(text,
                                           add_special_tokens=True)[:length]
            ids[row, :len(tokens)] = torch.as_tensor(tokens)
            mask[row, :len(tokens)] = True
        return dict(ids=ids, mask=mask)

    def forward_stem(self, ids: Tensor, mask: Tensor):
        """Embeddings ``word + position (0..L-1) + token type 0``, then
        LayerNorm (summed in the reference BERT's order), and the extended
        mask ``[T, 1, 1, L]``."""
        emb = self.embeddings
        ids = ids.to(emb.word_embeddings.weight.device)
        positions = torch.arange(ids.shape[1], device=ids.device)[None]
        words = (emb.word_embeddings(ids) + emb.position_embeddings(positions)
                 + emb.token_type_embeddings(torch.zeros_like(ids)))
        words = emb.dropout(emb.LayerNorm(words))
        return words, extended_attention_mask(mask.to(ids.device),
                                              words.dtype)

    @staticmethod
    def layer_forward(layer: nn.Module, words: Tensor,
                      extended_mask: Tensor) -> Tensor:
        """One ``transformers`` ``BertLayer`` through its own modules, with
        the scores ``q k^T / sqrt(d) + mask`` of the reference BERT (the
        eager path multiplies by ``d^-0.5``: a rounding apart)."""
        attn = layer.attention.self
        batch, length, _ = words.shape
        heads, dim = attn.num_attention_heads, attn.attention_head_size

        def split(x):
            return x.view(batch, length, heads, dim).transpose(1, 2)

        query, key = split(attn.query(words)), split(attn.key(words))
        value = split(attn.value(words))
        scores = query @ key.transpose(-1, -2) / math.sqrt(dim)
        probs = attn.dropout((scores + extended_mask).softmax(-1))
        context = (probs @ value).transpose(1, 2).reshape(
            batch, length, heads * dim)
        hidden = layer.attention.output(context, words)
        return layer.output(layer.intermediate(hidden), hidden)

    def forward_block(self, index: int, words: Tensor,
                      extended_mask: Tensor) -> Tensor:
        """Run the layers of block ``index``."""
        start = self.block_layers[index - 1] if index else 0
        for layer in self.encoder.layer[start:self.block_layers[index]]:
            words = self.layer_forward(layer, words, extended_mask)
        return words

    def encode(self, tokenized: Dict[str, Tensor]) -> Dict[str, Tensor]:
        mask = tokenized['mask'].to(torch.bool)
        words, ext = self.forward_stem(tokenized['ids'], mask)
        for index in range(self.num_blocks):
            words = self.forward_block(index, words, ext)
        return dict(tokens=words, mask=mask.to(words.device),
                    sentence=words[:, 0])
