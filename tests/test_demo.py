"""RISInferencer and tools/demo.py with the weight-free centre prior."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import DATA, REPO, run_env
from mmwris.apis import RISInferencer

CONFIG = osp.join(REPO, 'configs', 'baselines',
                  'centerprior_gaussian_1xb16-eval_refcoco-unc-320x320.py')
PHOTO = osp.join(DATA, 'COCO_train2014_000000363252.jpg')


def test_inferencer_returns_masks_at_image_size():
    inferencer = RISInferencer(CONFIG, device='cpu')
    small = np.zeros((50, 70, 3), np.uint8)
    result = inferencer([PHOTO, small], ['guy on right', 'middle guy'])
    assert result['masks'][0].shape == (500, 375)
    assert result['masks'][1].shape == (50, 70)
    response = result['responses'][1]
    assert np.unravel_index(response.argmax(), response.shape) == (24, 34)
    assert result['masks'][1][25, 35] and not result['masks'][1][0, 0]


def test_inferencer_rejects_bad_input(tmp_path):
    inferencer = RISInferencer(CONFIG, device='cpu')
    with pytest.raises(ValueError, match='one expression per image'):
        inferencer([PHOTO, PHOTO], ['a'])
    with pytest.raises(ValueError, match='empty'):
        inferencer(PHOTO, '  ')


def test_demo_writes_overlay(tmp_path):
    out = tmp_path / 'overlay.png'
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', PHOTO, 'guy on right', CONFIG,
         '--out', str(out), '--device', 'cpu'],
        cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    picture = cv2.imread(str(out))
    assert picture.shape[1] == 375 and picture.shape[0] > 500


def test_demo_unreadable_image(tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not an image')
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', str(bad), 'x', CONFIG, '--out',
         str(tmp_path / 'o.png')],
        cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f'Cannot read image {bad}' in proc.stderr
