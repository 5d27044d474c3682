"""PRMS and the resumable pseudo-label tool (tools/generate_pseudo_labels.py)."""
import json
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO, run_env
from mmwris.pseudo_labels import select_response_prms
from mmwris.registry import MODELS

TINY = osp.join(REPO, 'configs', 'tris',
                'tris_clip-tiny_1xb32-3k_toyrefer-128x128.py')
PRMS_CONFIG = f"""_base_ = ['{TINY}']
pseudo_label_cfg = dict(prms=True, scorer=dict(_delete_=True, arch=dict(
    embed_dim=32,
    vision_cfg=dict(layers=1, width=32, patch_size=16, image_size=64,
                    head_width=16),
    text_cfg=dict(context_length=20, vocab_size=49408, width=32, heads=2,
                  layers=1))))
"""


class FakeScorer:
    """Image embedding = mean colour; text embedding picks a colour."""
    COLOURS = {'red': [1., 0, 0], 'green': [0, 1., 0], 'blue': [0, 0, 1.]}

    def encode_image(self, images):
        return torch.nn.functional.normalize(images.mean((2, 3)), dim=-1)

    def encode_text(self, texts):
        return torch.tensor([self.COLOURS[t.split()[-1]] for t in texts])


def test_prms_selects_map_agreeing_with_all_texts():
    image = torch.zeros(3, 4, 4)
    image[0, :, :2] = 1          # red left half
    image[2, :, 2:] = 1          # blue right half
    on_red = torch.zeros(4, 4)
    on_red[:, :2] = 1
    on_blue = 1 - on_red
    responses = torch.stack([on_blue, on_red, on_red])
    index, scores = select_response_prms(
        responses, image, ['the blue', 'a red', 'thing red'], FakeScorer())
    assert index in (1, 2) and scores[1] == scores[2] > scores[0]
    with pytest.raises(ValueError):
        select_response_prms(responses, image, ['a red'], FakeScorer())


@pytest.fixture(scope='module')
def step1_checkpoint(tmp_path_factory):
    """A (randomly initialised) tiny step-1 model saved as a checkpoint."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY).model)
    path = tmp_path_factory.mktemp('ckpt') / 'step1.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path


def tool(out, checkpoint, root, *extra, config=TINY):
    return [sys.executable, 'tools/generate_pseudo_labels.py', str(config),
            str(checkpoint), '--out', str(out), '--cfg-options',
            f'train_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', *extra]


def run_tool(cmd):
    proc = subprocess.run(cmd, cwd=REPO, env=run_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def png_files(out):
    return sorted(p.name for p in (out / 'masks').glob('*.png'))


# One expression per forward pass in every run: batched convolutions may
# round differently with the batch size, and labels are compared bytewise.
SAME_BATCHES = ('pseudo_label_cfg.batch_size=1', '--refiner', 'threshold')


def test_killed_run_resumes_to_the_same_labels(toy_refer_root,
                                               step1_checkpoint, tmp_path):
    reference = tmp_path / 'reference'
    run_tool(tool(reference, step1_checkpoint, toy_refer_root,
                  *SAME_BATCHES))
    summary = json.loads((reference / 'summary.json').read_text())
    total = summary['refs']
    assert summary['written'] == total and summary['failed'] == 0
    assert len(png_files(reference)) == total
    assert 0 <= summary['quality']['mIoU'] <= 100

    out = tmp_path / 'killed'
    proc = subprocess.Popen(
        tool(out, step1_checkpoint, toy_refer_root,
             *SAME_BATCHES),
        cwd=REPO, env=run_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / 'masks').is_dir() and len(png_files(out)) >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, 'the tool finished before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(png_files(out))
    assert 10 <= done_before < total
    for name in png_files(out):       # no half-written PNG under a final name
        assert cv2.imread(str(out / 'masks' / name),
                          cv2.IMREAD_UNCHANGED) is not None

    run_tool(tool(out, step1_checkpoint, toy_refer_root, *SAME_BATCHES))
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['skipped'] >= done_before
    assert summary['skipped'] + summary['written'] == total
    assert not [p for p in (out / 'masks').iterdir() if '.tmp-' in p.name]
    assert png_files(out) == png_files(reference)
    for name in png_files(out):
        assert (out / 'masks' / name).read_bytes() == \
            (reference / 'masks' / name).read_bytes(), name
    index = json.loads((out / 'index.json').read_text())
    assert len(index) == total
    label = cv2.imread(str(out / 'masks' / png_files(out)[0]),
                       cv2.IMREAD_UNCHANGED)
    assert set(np.unique(label)) <= {0, 1, 255}


def test_prms_with_a_tiny_scorer(toy_refer_root, step1_checkpoint, tmp_path):
    out = tmp_path / 'prms'
    config = tmp_path / 'prms_config.py'
    config.write_text(PRMS_CONFIG)
    run_tool(tool(out, step1_checkpoint, toy_refer_root, '--refiner',
                  'threshold', config=config))
    index = json.loads((out / 'index.json').read_text())
    multi = [r for r in index.values() if r.get('prms_scores')
             and len(r['prms_scores']) > 1]
    assert multi, 'toy refs have several expressions each'
    for record in multi:
        assert len(record['prms_scores']) > 1


def test_wrong_checkpoint_is_a_clear_error(toy_refer_root, tmp_path):
    wrong = tmp_path / 'wrong.pth'
    torch.save(dict(state_dict={'foo.weight': torch.zeros(1)}, meta={}),
               wrong)
    proc = subprocess.run(tool(tmp_path / 'o', wrong, toy_refer_root),
                          cwd=REPO, env=run_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert 'is not a checkpoint of the TRISSegmentor' in proc.stderr
