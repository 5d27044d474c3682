"""The OpenMMLab entry points on the toy data: tools/test.py, mmseg's own
packaged tools, and a 2-process CPU (gloo) distributed evaluation."""
import glob
import json
import os.path as osp
import pickle
import socket
import subprocess
import sys

import mmseg
import pytest
import torch
from pycocotools import mask as mask_utils

from conftest import REPO, run_env

CONFIG = osp.join(REPO, 'configs', 'baselines',
                  'centerprior_gaussian_1xb32-eval_toyrefer-128x128.py')
SPLITS = ('val', 'testA', 'testB')
METRICS = ('PointM', 'PointIt', 'AccBox', 'mIoU', 'oIoU', 'Prec@0.5',
           'Prec@0.6', 'Prec@0.7', 'Prec@0.8', 'Prec@0.9')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd, **kwargs):
    proc = subprocess.run(cmd, cwd=REPO, env=run_env(kwargs.pop('threads', 1)),
                          capture_output=True, text=True, timeout=600,
                          **kwargs)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def read_metrics(work_dir) -> dict:
    files = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.load(f)


def centre_hits(root, split):
    """PointM of the centre prior computed independently: the Gaussian's
    arg-max is the first of the central pixels in raster order."""
    with open(root / 'toyref' / 'refs(synth).p', 'rb') as f:
        refs = pickle.load(f)
    coco = json.loads((root / 'toyref' / 'instances.json').read_text())
    anns = {a['id']: a for a in coco['annotations']}
    images = {i['id']: i for i in coco['images']}
    hits = total = 0
    for ref in refs:
        if ref['split'] != split:
            continue
        img = images[ref['image_id']]
        h, w = img['height'], img['width']
        seg = anns[ref['ann_id']]['segmentation']
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) \
            if isinstance(seg, list) else dict(seg, counts=seg['counts'].encode())
        mask = mask_utils.decode(rle)
        y, x = (h - 1) // 2, (w - 1) // 2
        hits += int(mask[y, x]) * len(ref['sentences'])
        total += len(ref['sentences'])
    return 100 * hits / total, total


def test_tools_test_evaluates_centre_prior(toy_refer_root, tmp_path):
    out, show = tmp_path / 'out', tmp_path / 'show'
    run([sys.executable, 'tools/test.py', CONFIG, '--work-dir',
         str(tmp_path / 'wd'), '--out', str(out), '--show-dir', str(show),
         '--cfg-options', f'test_dataloader.dataset.data_root={toy_refer_root}'])
    metrics = read_metrics(tmp_path / 'wd')
    total = 0
    for split in SPLITS:
        for name in METRICS:
            assert f'{split}/{name}' in metrics
        expected, count = centre_hits(toy_refer_root, split)
        assert metrics[f'{split}/PointM'] == pytest.approx(expected, abs=0.01)
        total += count
    lines = (out / 'results.jsonl').read_text().splitlines()
    assert len(lines) == total
    pictures = sorted(p.name for p in show.glob('*.png'))
    assert len(pictures) == total
    first = json.loads(lines[0])
    assert f'{first["image_id"]}_{first["ref_id"]}_{first["sent_id"]}.png' \
        in pictures


def test_configs_run_through_mmseg_packaged_tools(toy_refer_root, tmp_path):
    tools = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools')
    checkpoint = tmp_path / 'empty.pth'
    torch.save(dict(state_dict={}, meta={}), checkpoint)
    run([sys.executable, osp.join(tools, 'test.py'), CONFIG, str(checkpoint),
         '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
         f'test_dataloader.dataset.data_root={toy_refer_root}'])
    metrics = read_metrics(tmp_path / 'wd')
    expected, _ = centre_hits(toy_refer_root, 'val')
    assert metrics['val/PointM'] == pytest.approx(expected, abs=0.01)


def test_two_process_cpu_evaluation_matches_one(toy_refer_root, tmp_path):
    options = ['--cfg-options',
               f'test_dataloader.dataset.data_root={toy_refer_root}',
               'test_dataloader.batch_size=4']
    run([sys.executable, 'tools/test.py', CONFIG, '--work-dir',
         str(tmp_path / 'one')] + options)
    env = run_env(1)
    env['PORT'] = str(free_port())
    env['PYTHON'] = sys.executable
    proc = subprocess.run(
        ['bash', 'tools/dist_test.sh', CONFIG, 'none', '2', '--work-dir',
         str(tmp_path / 'two')] + options,
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    log = glob.glob(osp.join(str(tmp_path / 'two'), '*', '*.log'))[0]
    log_text = open(log).read()
    assert 'Distributed training: True' in log_text
    assert "backend='gloo'" in log_text
    one, two = read_metrics(tmp_path / 'one'), read_metrics(tmp_path / 'two')
    for split in SPLITS:
        for name in METRICS:
            key = f'{split}/{name}'
            assert two[key] == pytest.approx(one[key], abs=1e-6), key
