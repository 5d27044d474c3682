import itertools
from typing import Iterator

from mmengine.dataset import DefaultSampler, InfiniteSampler

from mmwris.registry import DATA_SAMPLERS
from .draws import SampleKey


@DATA_SAMPLERS.register_module()
class KeyedDefaultSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` whose indices carry a draw key
    ``(seed, epoch, index)`` (see :mod:`mmwris.datasets.draws`).

    The same indices in the same order as ``DefaultSampler``; a training
    sample's random draws depend only on the seed, the epoch and its index,
    so a resumed run (epoch- or iteration-based, which re-sets the epoch on
    every pass) repeats them exactly.
    """

    def __iter__(self) -> Iterator[int]:
        for index in super().__iter__():
            yield SampleKey(index, (self.seed, self.epoch, index))


@DATA_SAMPLERS.register_module()
class KeyedInfiniteSampler(InfiniteSampler):
    """mmengine's ``InfiniteSampler`` whose indices carry a draw key
    ``(seed, position)``, the position in the global (all-rank) index
    stream: a sample's draws do not depend on the number of ranks, and
    ``skip`` (resume) keeps them.
    """

    def _indices_of_rank(self) -> Iterator[int]:
        stream = enumerate(self._infinite_indices())
        for position, index in itertools.islice(stream, self.rank, None,
                                                self.world_size):
            yield SampleKey(index, (self.seed, position))
