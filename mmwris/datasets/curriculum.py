"""PPT's multi-source curriculum: named sources and a staged sampler.

``CurriculumDataset`` concatenates named source datasets (each with its own
pipeline). ``CurriculumSampler`` is an infinite, iteration-based sampler
(like mmengine's ``InfiniteSampler``) that picks one source per training
iteration from the ratios of the schedule's current stage and fills the
whole batch (every rank's part) from it, so a batch never mixes
pipelines. ``CurriculumHook`` checks the batch size and logs the stage,
the ratios and the source of every iteration.

Config::

    train_dataloader = dict(
        batch_size=16,
        sampler=dict(type='CurriculumSampler', batch_size=16, schedule=[
            dict(begin=0, ratios=dict(captions=1.0)),
            dict(begin=2000, ratios=dict(captions=0.2, classes=0.8)),
            dict(begin=6000, ratios=dict(classes=0.2, refer=0.8))]),
        dataset=dict(type='CurriculumDataset', sources=dict(
            captions=dict(type='ObjectCentricCaptionDataset', ...),
            classes=dict(type='ClassInstanceDataset', ...),
            refer=dict(type='RefCOCODataset', ...))))
    custom_hooks = [dict(type='CurriculumHook')]

Determinism: iteration ``t`` draws its source from ``u_t``, a uniform
number of the stream seeded by ``seed``; every source has its own index
stream (a permutation per pass, seeded by ``(seed, source, pass)``), of
which each iteration takes the next ``world_size * batch_size`` indices;
rank ``r`` gets slice ``r``. The indices do not depend on the number of
workers; the union over ranks equals the one-rank stream with
``world_size * batch_size``; ``skip`` (mmengine's resume) jumps to any
iteration in O(iterations) cheap work. Every index carries the draw key
``(seed, source name, position in the source stream)``
(:class:`SampleKey`), so the sample's draws (expression, negatives) are
repeated after a resume.
"""
import bisect
import logging
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import Sampler

from mmwris.registry import DATASETS, DATA_SAMPLERS, HOOKS
from .draws import SampleKey, key_of

# Namespace words of the sampler's random streams.
_CHOICE_STREAM = 0x63757272
_INDEX_STREAM = 0x69647873
_CHUNK = 4096


@DATASETS.register_module()
class CurriculumDataset:
    """Named source datasets, concatenated in the order given.

    Index ``i`` belongs to the source whose range holds it
    (``offsets[k] <= i < offsets[k] + len(source k)``); the source's own
    pipeline loads it, and the draw key of ``i`` is passed on.

    Args:
        sources (dict): ``name -> dataset`` (a config or a built dataset).
            The order of the dict is the order of the index ranges.
        metainfo_from (str, optional): The source whose ``metainfo`` this
            dataset reports (what the runner gives the visualizer).
            Defaults to the last source (the referring data).
        lazy_init (bool): Do not load the sources' annotations until
            ``full_init``. Defaults to False.
    """

    def __init__(self,
                 sources: Dict[str, Union[dict, BaseDataset]],
                 metainfo_from: Optional[str] = None,
                 lazy_init: bool = False) -> None:
        if not isinstance(sources, dict) or not sources:
            raise ValueError('CurriculumDataset needs sources=dict(name='
                             'dataset, ...) with at least one source, got '
                             f'{sources!r}.')
        self.names: List[str] = [str(name) for name in sources]
        self.datasets = []
        for name, cfg in sources.items():
            if isinstance(cfg, dict):
                cfg = dict(cfg)
                if lazy_init:
                    cfg['lazy_init'] = True
                dataset = DATASETS.build(cfg)
            else:
                dataset = cfg
            self.datasets.append(dataset)
        if metainfo_from is not None and metainfo_from not in self.names:
            raise KeyError(f'metainfo_from={metainfo_from!r} is not a '
                           f'source; the sources are {self.names}.')
        self.metainfo_from = metainfo_from or self.names[-1]
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        for dataset in self.datasets:
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
        self.lengths = [len(d) for d in self.datasets]
        self.offsets = [int(v) for v in np.cumsum([0] + self.lengths[:-1])]
        empty = [n for n, size in zip(self.names, self.lengths) if not size]
        if empty:
            raise ValueError(f'The curriculum sources {empty} are empty.')
        self._fully_initialized = True

    @property
    def metainfo(self) -> dict:
        return self.source(self.metainfo_from).metainfo

    def source(self, name: str):
        """The source dataset called ``name``."""
        if name not in self.names:
            raise KeyError(f'Unknown curriculum source {name!r}; the sources'
                           f' are {self.names}.')
        return self.datasets[self.names.index(name)]

    def __len__(self) -> int:
        self.full_init()
        return sum(self.lengths)

    def locate(self, idx: int):
        """``(source index, index within the source)`` of ``idx``."""
        self.full_init()
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f'index {idx} out of range for a curriculum of '
                             f'{len(self)} samples.')
        k = bisect.bisect_right(self.offsets, idx) - 1
        return k, int(idx) - self.offsets[k]

    def _local(self, idx):
        k, local = self.locate(int(idx))
        key = key_of(idx)
        return self.datasets[k], (SampleKey(local, key)
                                  if key is not None else local)

    def get_data_info(self, idx: int) -> dict:
        dataset, local = self._local(idx)
        return dataset.get_data_info(local)

    def __getitem__(self, idx):
        dataset, local = self._local(idx)
        return dataset[local]

    def __repr__(self) -> str:
        parts = ', '.join(f'{n}: {type(d).__name__}'
                          for n, d in zip(self.names, self.datasets))
        return f'{type(self).__name__}({parts})'


def check_schedule(schedule: Sequence[dict],
                   names: Sequence[str]) -> List[dict]:
    """Validate a curriculum schedule; return it normalised: stages
    ``dict(begin, ratios={name: share})``, shares summing to 1, every
    source named (0 when absent).

    Raises ``ValueError`` (``KeyError`` for an unknown source) with the
    stage at fault.
    """
    if not isinstance(schedule, (list, tuple)) or not schedule:
        raise ValueError('schedule must be a non-empty list of stages '
                         'dict(begin=iteration, ratios=dict(source=weight)), '
                         f'got {schedule!r}.')
    stages = []
    for i, stage in enumerate(schedule):
        if not isinstance(stage, dict) or set(stage) - {'begin', 'ratios',
                                                        'name'} \
                or 'begin' not in stage or 'ratios' not in stage:
            raise ValueError(f'schedule stage {i} must be dict(begin=int, '
                             f'ratios=dict(...)[, name=str]), got {stage!r}.')
        begin = stage['begin']
        if isinstance(begin, bool) or not isinstance(
                begin, (int, np.integer)) or begin < 0:
            raise ValueError(f'schedule stage {i}: begin must be an '
                             f'iteration >= 0, got {begin!r}.')
        if i == 0 and begin != 0:
            raise ValueError(f'schedule stage 0 must begin at iteration 0, '
                             f'got begin={begin}.')
        if stages and begin <= stages[-1]['begin']:
            raise ValueError(
                f'schedule stages must be sorted by strictly increasing '
                f'begin: stage {i} begins at {begin}, stage {i - 1} at '
                f'{stages[-1]["begin"]}.')
        ratios = stage['ratios']
        if not isinstance(ratios, dict):
            raise ValueError(f'schedule stage {i}: ratios must be a dict '
                             f'source -> weight, got {ratios!r}.')
        unknown = sorted(set(ratios) - set(names))
        if unknown:
            raise KeyError(f'schedule stage {i} names unknown sources '
                           f'{unknown}; the sources are {list(names)}.')
        for name, value in ratios.items():
            if isinstance(value, bool) or not isinstance(
                    value, (int, float, np.number)) or not np.isfinite(
                        value) or value < 0:
                raise ValueError(f'schedule stage {i}: the ratio of '
                                 f'{name!r} must be a finite number >= 0, '
                                 f'got {value!r}.')
        total = float(sum(ratios.values()))
        if not total > 0:
            raise ValueError(f'schedule stage {i}: the ratios must sum to '
                             f'more than 0, got {dict(ratios)}.')
        stages.append(dict(
            begin=int(begin), name=stage.get('name', f'stage{i}'),
            ratios={n: float(ratios.get(n, 0.0)) / total for n in names}))
    return stages


@DATA_SAMPLERS.register_module()
class CurriculumSampler(Sampler):
    """Infinite, iteration-based sampler over a :class:`CurriculumDataset`
    that follows a staged mixing schedule; one source per iteration.

    Args:
        dataset (CurriculumDataset): The sources.
        schedule (list[dict]): Stages ``dict(begin=iteration,
            ratios=dict(source=weight, ...)[, name=str])``: the first begins
            at 0, the begins increase strictly, weights are >= 0 with a
            positive sum (normalised; absent sources get 0).
        batch_size (int): The dataloader's (per-rank) batch size: each
            iteration takes ``batch_size`` consecutive indices per rank
            from one source. ``CurriculumHook`` checks that it matches.
        shuffle (bool): Shuffle each source (a new permutation per pass).
            Defaults to True.
        seed (int, optional): Defaults to a seed synchronised over ranks.
        rank, world_size (int, optional): Default to the process group's.
    """

    def __init__(self,
                 dataset: CurriculumDataset,
                 schedule: Sequence[dict],
                 batch_size: int,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        if not hasattr(dataset, 'names') or not hasattr(dataset, 'locate'):
            raise TypeError('CurriculumSampler samples a CurriculumDataset '
                            '(named sources), got '
                            f'{type(dataset).__name__}.')
        if isinstance(batch_size, bool) or not isinstance(
                batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError('CurriculumSampler needs batch_size = the '
                             "dataloader's batch_size (>= 1), got "
                             f'{batch_size!r}.')
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f'rank {self.rank} not in [0, '
                             f'{self.world_size}).')
        self.dataset = dataset
        dataset.full_init()
        self.names = list(dataset.names)
        self.stages = check_schedule(schedule, self.names)
        self.begins = [stage['begin'] for stage in self.stages]
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.sizes = list(dataset.lengths)
        self.offsets = list(dataset.offsets)
        self._cumulative = np.stack([self._cum(s) for s in self.stages])
        self.indices = self._iterate(0)

    def _cum(self, stage: dict) -> np.ndarray:
        shares = np.array([stage['ratios'][n] for n in self.names])
        cum = np.cumsum(shares)
        cum[int(np.flatnonzero(shares > 0)[-1]):] = 1.0
        return cum

    # -- the schedule ---------------------------------------------------
    def stage_index(self, iteration: int) -> int:
        """The stage in force at ``iteration``."""
        return bisect.bisect_right(self.begins, int(iteration)) - 1

    def ratios_at(self, iteration: int) -> Dict[str, float]:
        """The normalised source shares at ``iteration``."""
        return dict(self.stages[self.stage_index(iteration)]['ratios'])

    def _uniforms(self, start: int, stop: int) -> np.ndarray:
        """``u_t`` for ``start <= t < stop``."""
        chunks = []
        for c in range(start // _CHUNK, (stop - 1) // _CHUNK + 1):
            values = np.random.default_rng(
                [self.seed, _CHOICE_STREAM, c]).random(_CHUNK)
            lo = max(start - c * _CHUNK, 0)
            hi = min(stop - c * _CHUNK, _CHUNK)
            chunks.append(values[lo:hi])
        return np.concatenate(chunks) if chunks else np.zeros(0)

    def source_ids(self, start: int, stop: int) -> np.ndarray:
        """Source index of every iteration ``start <= t < stop``."""
        if stop <= start:
            return np.zeros(0, int)
        iters = np.arange(start, stop)
        stage = np.searchsorted(self.begins, iters, side='right') - 1
        u = self._uniforms(start, stop)
        cum = self._cumulative[stage]
        return np.minimum((cum <= u[:, None]).sum(1), len(self.names) - 1)

    def source_at(self, iteration: int) -> str:
        """The source that fills the batch of ``iteration``."""
        return self.names[int(self.source_ids(iteration, iteration + 1)[0])]

    # -- the indices ----------------------------------------------------
    def _pass(self, source: int, epoch: int) -> np.ndarray:
        size = self.sizes[source]
        if not self.shuffle:
            return np.arange(size)
        return np.random.default_rng(
            [self.seed, _INDEX_STREAM, source, epoch]).permutation(size)

    def _iterate(self, start_iter: int) -> Iterator[SampleKey]:
        block = self.world_size * self.batch_size
        # Indices of each source consumed before start_iter.
        used = np.bincount(self.source_ids(0, start_iter),
                           minlength=len(self.names)) * block
        passes = {}
        t = start_iter
        while True:
            for source in self.source_ids(t, t + _CHUNK):
                size = self.sizes[source]
                first = int(used[source]) + self.rank * self.batch_size
                used[source] += block
                for position in range(first, first + self.batch_size):
                    epoch, offset = divmod(position, size)
                    perm = passes.get((source, epoch))
                    if perm is None:
                        for key in [k for k in passes if k[0] == source]:
                            del passes[key]
                        perm = passes[(source, epoch)] = self._pass(
                            source, epoch)
                    yield SampleKey(
                        self.offsets[source] + int(perm[offset]),
                        (self.seed, self.names[source], position))
            t += _CHUNK

    def __iter__(self) -> Iterator[int]:
        yield from self.indices

    def skip(self, num_samples: int) -> None:
        """Resume: restart the stream after ``num_samples`` per-rank
        indices (mmengine's ``InfiniteSampler.skip`` contract; ``num_iters
        * batch_size``)."""
        if num_samples < 0:
            raise ValueError(f'num_samples must be >= 0, got {num_samples}.')
        if num_samples % self.batch_size:
            raise ValueError(
                f'CurriculumSampler.skip({num_samples}): not a multiple of '
                f'its batch_size {self.batch_size}; the dataloader\'s '
                'batch_size must equal the sampler\'s.')
        self.indices = self._iterate(num_samples // self.batch_size)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Not used by iteration-based training."""

    def describe(self) -> str:
        lines = []
        for stage in self.stages:
            shares = ', '.join(f'{n} {v:.2f}' for n, v in
                               stage['ratios'].items() if v > 0)
            lines.append(f'  {stage["name"]} from iteration '
                         f'{stage["begin"]}: {shares}')
        return 'curriculum:\n' + '\n'.join(lines)


def find_curriculum_sampler(dataloader) -> Optional[CurriculumSampler]:
    """The ``CurriculumSampler`` of a dataloader, if any."""
    for sampler in (getattr(dataloader, 'sampler', None),
                    getattr(getattr(dataloader, 'batch_sampler', None),
                            'sampler', None)):
        if isinstance(sampler, CurriculumSampler):
            return sampler
    return None


@HOOKS.register_module()
class CurriculumHook(Hook):
    """Check and log the curriculum of the training dataloader.

    Before training: the dataloader's batch size must equal the sampler's
    (else a batch would span two sources). Every iteration it logs (as
    ``train/curriculum/...`` scalars, averaged over the logging window)
    ``stage`` (index), ``ratio_{source}`` (the scheduled shares) and
    ``src_{source}`` (1 when the batch came from the source: the window
    mean is the measured share), and announces each new stage.
    """
    priority = 'NORMAL'

    def __init__(self) -> None:
        self._stage = None
        self.sampler = None

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        sampler = find_curriculum_sampler(loader)
        if sampler is None:
            raise TypeError('CurriculumHook needs train_dataloader.sampler='
                            "dict(type='CurriculumSampler', ...).")
        batch_size = getattr(loader, 'batch_size', None) or getattr(
            getattr(loader, 'batch_sampler', None), 'batch_size', None)
        if batch_size != sampler.batch_size:
            raise ValueError(
                f'train_dataloader.batch_size={batch_size} but '
                f'CurriculumSampler(batch_size={sampler.batch_size}): set '
                'both to the same value so that a batch comes from one '
                'source.')
        loop = getattr(runner, 'train_loop', None)
        if isinstance(loop, EpochBasedTrainLoop):
            raise TypeError(
                'The curriculum is iteration-based (its sampler is '
                "infinite): use train_cfg = dict(type='IterBasedTrainLoop', "
                'max_iters=..., val_interval=...).')
        self.sampler = sampler
        print_log(sampler.describe(), logger='current')

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self.sampler is None:
            return
        iteration = runner.iter
        stage = self.sampler.stage_index(iteration)
        source = self.sampler.source_at(iteration)
        hub = runner.message_hub
        hub.update_scalar('train/curriculum/stage', stage)
        for name, share in self.sampler.stages[stage]['ratios'].items():
            hub.update_scalar(f'train/curriculum/ratio_{name}', share)
            hub.update_scalar(f'train/curriculum/src_{name}',
                              float(name == source))
        if stage != self._stage:
            self._stage = stage
            info = self.sampler.stages[stage]
            print_log(f'curriculum: iteration {iteration} is in '
                      f'{info["name"]} (begins at {info["begin"]}): '
                      f'{info["ratios"]}', logger='current',
                      level=logging.INFO)
