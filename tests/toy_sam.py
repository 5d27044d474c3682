"""A briefly pretrained tiny SAM shared by the tests (session scope, cached
in pytest's cache folder, keyed by the code that makes it).

Import the fixture into a test module with
``from toy_sam import pretrained_tiny_sam  # noqa: F401``.
"""
import hashlib
import importlib.util
import json
import os.path as osp
import shutil
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO

CONFIG = osp.join(REPO, 'configs', 'pretrain',
                  'sam-tiny_1xb4-600it_toymasks-128.py')
MAKER = osp.join(REPO, 'tools', 'dataset_converters', 'make_toy_masks.py')
EXPORTER = osp.join(REPO, 'tools', 'model_converters', 'export_sam.py')
ARCH = 'vit_toy'
CORPUS = dict(num_train=120, num_val=24, seed=5)
ITERS = 100
FOCAL_ALPHA = 0.75
# What the cached result depends on.
SOURCES = (CONFIG, MAKER, EXPORTER, __file__) + tuple(
    osp.join(REPO, *p.split('/')) for p in (
        'configs/_base_/models/sam_toy.py',
        'configs/_base_/datasets/toy_masks.py',
        'configs/_base_/schedules/sam_toy_600it.py',
        'mmwris/models/pretrain/sam_pretrainer.py',
        'mmwris/models/pretrain/sam_losses.py',
        'mmwris/models/pretrain/sam_prompts.py',
        'mmwris/models/foundation/sam.py',
        'mmwris/datasets/toy_masks.py',
        'mmwris/datasets/transforms/sam_transforms.py'))


def load_tool(path: str):
    """Import a script of tools/ (not a package) as a module."""
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_corpus(out_dir: str, **kwargs) -> dict:
    return load_tool(MAKER).make_toy_masks(out_dir, progress=False,
                                           **kwargs)


def val_loader_cfg(data_root: str) -> dict:
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    loader = cfg.val_dataloader
    loader.dataset.data_root = data_root
    return loader


def evaluate(model, data_root: str) -> dict:
    """``SAMPromptMetric`` of ``model`` (a ``SAMPretrainer``) on the val
    split of ``data_root``."""
    from mmengine.dataset import pseudo_collate
    from mmwris.registry import DATASETS, METRICS
    loader = val_loader_cfg(data_root)
    dataset = DATASETS.build(loader.dataset)
    metric = METRICS.build(dict(type='SAMPromptMetric'))
    model.eval()
    with torch.no_grad():
        for start in range(0, len(dataset), 8):
            batch = pseudo_collate([dataset[i] for i in range(
                start, min(start + 8, len(dataset)))])
            data = model.data_preprocessor(batch, False)
            metric.process(batch, model(**data, mode='predict'))
    return metric.compute_metrics(metric.results)


def build_pretrainer(sam_checkpoint=None):
    """A ``SAMPretrainer`` (config settings, seed 0), optionally with
    exported SAM weights (loaded strictly through ``build_sam``)."""
    from mmengine.config import Config
    from mmwris.models.foundation.sam import build_sam
    from mmwris.registry import MODELS
    import mmwris.models.pretrain  # noqa: F401
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    if sam_checkpoint:
        model.sam.load_state_dict(
            build_sam(ARCH, sam_checkpoint).state_dict())
    return model


def _fingerprint() -> str:
    digest = hashlib.sha1()
    for path in SOURCES:
        with open(path, 'rb') as f:
            digest.update(f.read())
    digest.update(json.dumps([CORPUS, ITERS, FOCAL_ALPHA]).encode())
    return digest.hexdigest()[:16]


def _pretrain(folder: str) -> None:
    from mmengine.config import Config
    from mmengine.runner import Runner
    data_root = osp.join(folder, 'toy_masks')
    make_corpus(data_root, **CORPUS)
    cfg = Config.fromfile(CONFIG)
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        loader.dataset.data_root = data_root
    cfg.work_dir = osp.join(folder, 'work_dir')
    # Weigh object pixels up: masks appear within ~60 iterations.
    cfg.model.focal_alpha = FOCAL_ALPHA
    cfg.train_cfg.max_iters = ITERS
    cfg.train_cfg.val_interval = ITERS + 1
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, begin=0, end=10,
             by_epoch=False),
        dict(type='PolyLR', power=0.9, begin=10, end=ITERS, by_epoch=False)
    ]
    cfg.default_hooks.checkpoint.interval = ITERS
    cfg.default_hooks.logger.interval = 20
    cfg.log_level = 'WARNING'
    Runner.from_cfg(cfg).train()
    load_tool(EXPORTER).export_sam(
        osp.join(cfg.work_dir, f'iter_{ITERS}.pth'),
        osp.join(folder, 'sam_toy.pth'), ARCH)


@pytest.fixture(scope='session')
def pretrained_tiny_sam(request, tmp_path_factory):
    """A SAM ``vit_toy`` pretrained for ``ITERS`` iterations through the
    runner on a small toy mask corpus: ``SimpleNamespace(data_root,
    checkpoint (runner), export (plain Sam state dict), arch)``."""
    cache = getattr(request.config, 'cache', None)  # None: no cacheprovider
    cache = str(cache.mkdir('toy_sam') if cache is not None else
                tmp_path_factory.mktemp('toy_sam'))
    folder = osp.join(cache, _fingerprint())
    done = osp.join(folder, 'sam_toy.pth')
    if not osp.exists(done):
        shutil.rmtree(folder, ignore_errors=True)
        _pretrain(folder)
    return SimpleNamespace(
        data_root=osp.join(folder, 'toy_masks'), export=done, arch=ARCH,
        checkpoint=osp.join(folder, 'work_dir', f'iter_{ITERS}.pth'))
