"""The toy world of the tests: the toy corpora and a briefly pretrained tiny
CLIP (docs/toy_world.md), shared through session fixtures.

Use a fixture by importing it into a test module::

    from toy_world import pretrained_tiny_clip  # noqa: F401

``pretrained_tiny_clip`` generates a small caption corpus, pretrains the
tiny CLIP through the runner (``CLIP_CONFIG``, ``PRETRAIN_ITERS`` iterations
of batch ``PRETRAIN_BATCH``, about 40 s on one thread), evaluates it on
the held-out pairs and exports it with ``export_clip.py``. Corpus, export
and metrics are cached in pytest's cache folder under a key of the settings
and of the code they come from, so later sessions reuse them (``pytest
--cache-clear`` starts over).
"""
import glob
import hashlib
import importlib.util
import json
import os
import os.path as osp
import time
from dataclasses import dataclass

import pytest

from conftest import REPO

CLIP_CONFIG = osp.join(REPO, 'configs', 'pretrain',
                       'clip-tiny_1xb64-400it_toycaptions-128x128.py')
FIXTURE_CAPTIONS = (1000, 200)  # train, val pairs
FIXTURE_SEED = 5
PRETRAIN_ITERS = 50
PRETRAIN_BATCH = 32
PRETRAIN_LR = 2e-3
WARMUP_ITERS = 8
# What the cached fixture depends on.
SOURCES = (
    'tools/dataset_converters/make_toy_refer.py',
    'tools/dataset_converters/make_toy_corpora.py',
    'tools/model_converters/export_clip.py',
    'mmwris/datasets/caption_dataset.py',
    'mmwris/evaluation/metrics/clip_retrieval_metric.py',
    'mmwris/models/foundation/clip.py',
    'mmwris/models/pretrain/clip_pretrainer.py',
    'configs/_base_/datasets/toy_captions.py',
    'configs/_base_/models/clip-pretrain_clip-tiny.py',
    'configs/_base_/models/clip_tiny.py',
    'configs/_base_/schedules/clip_pretrain_400it.py',
    'configs/pretrain/clip-tiny_1xb64-400it_toycaptions-128x128.py',
    'tests/toy_world.py',
)


def load_tool(*parts):
    """Import ``tools/<parts...>.py`` (tools are not a package)."""
    path = osp.join(REPO, 'tools', *parts)
    name = osp.splitext(parts[-1])[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_toy_corpora(out_dir, **kwargs):
    """``make_toy_corpora.make_toy_corpora`` without a progress bar."""
    module = load_tool('dataset_converters', 'make_toy_corpora.py')
    return module.make_toy_corpora(str(out_dir), progress=False, **kwargs)


def short_pretrain_cfg(captions_root, work_dir, iters=PRETRAIN_ITERS,
                       batch_size=PRETRAIN_BATCH, lr=PRETRAIN_LR,
                       warmup=WARMUP_ITERS):
    """``CLIP_CONFIG`` on ``captions_root`` for ``iters`` iterations: linear
    warm-up then cosine decay, one checkpoint and no validation at the
    end (call ``runner.val()``)."""
    from mmengine.config import Config

    cfg = Config.fromfile(CLIP_CONFIG)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(captions_root)
        cfg[loader].batch_size = batch_size
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, begin=0, end=warmup,
             by_epoch=False),
        dict(type='CosineAnnealingLR', eta_min=0.0, begin=warmup, end=iters,
             T_max=iters - warmup, by_epoch=False),
    ]
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1
    cfg.default_hooks.checkpoint.update(interval=iters, save_best=None)
    cfg.default_hooks.logger.interval = 10
    cfg.work_dir = str(work_dir)
    # Several runners in one process: keep their visualizers apart.
    cfg.visualizer.name = f'visualizer_{osp.basename(str(work_dir))}'
    cfg.experiment_name = osp.basename(str(work_dir))
    return cfg


@dataclass(frozen=True)
class PretrainedCLIP:
    """What :func:`pretrained_tiny_clip` gives."""
    weights: str  # the exported open_clip state dict
    arch: dict  # its architecture (configs/_base_/models/clip_tiny.py)
    captions_root: str  # the caption corpus (train and val pairs)
    metrics: dict  # CLIPRetrievalMetric on the val pairs ('clip/acc', ...)
    train_seconds: float  # pretraining wall time (runner.train)


def _cache_key() -> str:
    digest = hashlib.sha256()
    settings = (FIXTURE_CAPTIONS, FIXTURE_SEED, PRETRAIN_ITERS,
                PRETRAIN_BATCH, PRETRAIN_LR, WARMUP_ITERS)
    digest.update(repr(settings).encode())
    for path in SOURCES:
        with open(osp.join(REPO, path), 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def pretrain_tiny_clip(folder: str) -> PretrainedCLIP:
    """Generate, pretrain, evaluate and export into ``folder`` (reusing
    what a finished earlier call left there)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmwris.utils import atomic_write_json

    captions_root = osp.join(folder, 'corpora', 'captions')
    weights = osp.join(folder, 'clip-tiny_toycaptions.pth')
    summary_file = osp.join(folder, 'summary.json')
    arch = Config.fromfile(CLIP_CONFIG).model.arch.to_dict()
    if not (osp.exists(weights) and osp.exists(summary_file)):
        make_toy_corpora(osp.join(folder, 'corpora'), corpora=['captions'],
                         seed=FIXTURE_SEED, num_captions=FIXTURE_CAPTIONS)
        work_dir = osp.join(folder, f'work_dir_{os.getpid()}')
        runner = Runner.from_cfg(short_pretrain_cfg(captions_root, work_dir))
        start = time.perf_counter()
        runner.train()
        seconds = time.perf_counter() - start
        metrics = runner.val()
        export = load_tool('model_converters', 'export_clip.py')
        export.export_clip(
            osp.join(work_dir, f'iter_{PRETRAIN_ITERS}.pth'), weights)
        for name in glob.glob(osp.join(work_dir, '*.pth')):
            os.remove(name)  # the exported CLIP is what is kept
        atomic_write_json(summary_file,
                          dict(metrics=metrics, train_seconds=seconds))
    with open(summary_file) as f:
        summary = json.load(f)
    return PretrainedCLIP(weights=weights, arch=arch,
                          captions_root=captions_root, **summary)


@pytest.fixture(scope='session')
def pretrained_tiny_clip(request, tmp_path_factory) -> PretrainedCLIP:
    """A tiny CLIP pretrained for ``PRETRAIN_ITERS`` iterations on a toy
    caption corpus, exported; cached across sessions (module doc)."""
    cache = getattr(request.config, 'cache', None)
    if cache is None:
        folder = str(tmp_path_factory.mktemp('pretrained_tiny_clip'))
    else:
        folder = str(cache.mkdir(f'toy_world_clip_{_cache_key()}'))
    os.makedirs(folder, exist_ok=True)
    return pretrain_tiny_clip(folder)
