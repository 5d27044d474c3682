import json
import os
import os.path as osp
import shutil
import sys

import cv2
import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(REPO, 'tests', 'data')
if REPO not in sys.path:
    sys.path.insert(0, REPO)


@pytest.fixture(scope='session', autouse=True)
def _register():
    from mmwris.utils import register_all_modules
    register_all_modules()


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@pytest.fixture(autouse=True)
def _fresh_visualizers():
    """Forget the visualizers a test's runners made: mmengine reuses a
    visualizer by name, with the save_dir of the test that made it, and
    a passing test's temporary folder is deleted (pytest.ini)."""
    yield
    from mmengine.visualization import Visualizer
    for cls in [Visualizer, *_subclasses(Visualizer)]:
        cls._instance_dict.clear()


@pytest.fixture
def real_refer_root(tmp_path):
    """The real RefCOCOg-umd subset with placeholder images of the recorded
    sizes (the fixture ships no photos)."""
    root = tmp_path / 'refcocog'
    root.mkdir()
    for name in ('refs(umd).p', 'instances.json'):
        shutil.copy(osp.join(DATA, 'refcocog_umd', name), root / name)
    coco = json.loads((root / 'instances.json').read_text())
    (root / 'images').mkdir()
    rng = np.random.default_rng(0)
    for img in coco['images']:
        pixels = rng.integers(0, 255, (img['height'], img['width'], 3),
                              dtype=np.uint8)
        cv2.imwrite(str(root / 'images' / img['file_name']), pixels)
    return root


def make_toy_refer(out_dir, **kwargs):
    """Run tools/dataset_converters/make_toy_refer.py (not a package)."""
    import importlib.util
    path = osp.join(REPO, 'tools', 'dataset_converters', 'make_toy_refer.py')
    spec = importlib.util.spec_from_file_location('make_toy_refer', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_toy_refer(str(out_dir), **kwargs)


@pytest.fixture(scope='session')
def toy_refer_root(tmp_path_factory):
    """A small generated toy refer dataset shared by the session."""
    root = tmp_path_factory.mktemp('toy_refer')
    make_toy_refer(root, num_train=40, num_val=8, num_testA=6, num_testB=6,
                   seed=3)
    return root


def run_env(threads: int = 1) -> dict:
    """Environment for subprocesses: repo importable, few threads."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env['OMP_NUM_THREADS'] = str(threads)
    env['MKL_NUM_THREADS'] = str(threads)
    return env
