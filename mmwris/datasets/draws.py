"""Per-sample randomness: every random draw of a training sample (its
expression, negatives, partner, flip) comes from a generator seeded by the
sample's *draw key*, not from a global RNG.

The key is given by the sampler (:class:`KeyedDefaultSampler`: seed, epoch
and index; :class:`KeyedInfiniteSampler`: seed and position in the index
stream) and travels with the index (:class:`SampleKey`) to whichever
dataloader worker loads it. A sample therefore gets the same draws in an
uninterrupted run, after ``--resume`` (mmengine skips the already-trained
indices without loading them), with any number of workers and under DDP.
"""
import hashlib
import random
from typing import Hashable, Optional

DRAW_KEY = 'draw_key'  # pipeline-only: the sample's key (or None)


class SampleKey(int):
    """A dataset index that carries the key of its random draws.

    Behaves as the ``int`` index everywhere (``dataset[idx]``, slicing...);
    ``key`` is read by :func:`draw_rng`.
    """
    key: Hashable

    def __new__(cls, index: int, key: Hashable) -> 'SampleKey':
        obj = super().__new__(cls, index)
        obj.key = key
        return obj

    def __reduce__(self):
        return SampleKey, (int(self), self.key)

    def __repr__(self) -> str:
        return f'SampleKey({int(self)}, key={self.key!r})'


def key_of(index) -> Optional[Hashable]:
    """The draw key of a dataset index (None for a plain int)."""
    return getattr(index, 'key', None)


def draw_rng(results: dict, purpose: str) -> random.Random:
    """A generator for one ``purpose`` (``'negatives'``...) of a sample.

    Seeded by ``(draw key, purpose)``, so the transforms of a pipeline draw
    independently of each other and of their order. Without a key (a plain
    sampler, inference) it is seeded from Python's global ``random``, which
    keeps a seeded uninterrupted run reproducible but not a resumed one.
    """
    key = results.get(DRAW_KEY)
    if key is None:
        return random.Random(random.getrandbits(64))
    digest = hashlib.blake2b(repr((key, purpose)).encode(), digest_size=8)
    return random.Random(int.from_bytes(digest.digest(), 'little'))
