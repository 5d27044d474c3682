"""The text-encoder contract shared by every method.

A text encoder maps ``T`` strings to::

    tokens   [T, L, C]  per-token features (C = ``width``)
    mask     [T, L]     bool, True on real tokens (padding False)
    sentence [T, D]     one embedding per text (D = ``embed_dim``)

Tokenisation is separate (:meth:`BaseTextEncoder.tokenize`) so a segmentor
tokenises a batch once and encodes the result (:meth:`encode`); calling the
encoder on strings does both. ``CLIPTextEncoder`` implements it with CLIP's
text tower; a BERT encoder (MagNet) implements the same three outputs.
"""
from typing import Dict, List, Union

from torch import Tensor

TextInput = Union[List[str], Dict[str, Tensor]]


class BaseTextEncoder:
    """Mixin of text encoders (see the module docstring).

    Attributes:
        width (int): ``C``, the width of ``tokens``.
        embed_dim (int): ``D``, the width of ``sentence``.
        context_length (int): ``L``.
    """
    width: int
    embed_dim: int
    context_length: int

    def tokenize(self, texts: List[str]) -> Dict[str, Tensor]:
        """``T`` strings -> ``dict(ids=[T, L] long, mask=[T, L] bool)``."""
        raise NotImplementedError

    def encode(self, tokenized: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Tokenised texts -> ``dict(tokens, mask, sentence)``."""
        raise NotImplementedError

    def forward(self, texts: TextInput) -> Dict[str, Tensor]:
        """Encode strings (tokenised here) or an already tokenised batch."""
        if isinstance(texts, dict):
            return self.encode(texts)
        return self.encode(self.tokenize(list(texts)))
