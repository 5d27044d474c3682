"""IRN as a pseudo-label refiner: seeds, the label-unary CRF, the
``IRNRefiner`` contract and the three-pass tool on the toy data."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from mmwris.registry import MODELS
from test_pseudo_labels import run_tool, tool
from mmwris.pseudo_labels import DenseCRFRefiner
from mmwris.pseudo_labels.irn.seeds import irn_seed_labels, normalized_cam


def test_normalized_cam_is_relu_over_max():
    cam = normalized_cam(np.array([[-1.0, 0.0], [1.0, 4.0]]))
    np.testing.assert_allclose(cam, [[0, 0], [0.25, 1.0]], atol=1e-5)
    assert cam.max() < 1.0       # max + eps in the denominator
    assert normalized_cam(np.full((2, 2), -3.0)).max() == 0


def test_seed_labels_thresholds_and_ties():
    cam = np.array([[0.05, 0.1, 0.2, 0.3, 0.31]], np.float32)
    labels = irn_seed_labels(cam, np.zeros((1, 5, 3), np.uint8))
    # at a threshold a pixel is background (released argmax([thr, cam]))
    assert labels.tolist() == [[0, 0, 255, 255, 1]]
    with pytest.raises(ValueError, match='bg_thr'):
        irn_seed_labels(cam, None, fg_thr=0.1, bg_thr=0.3)


def test_label_unary_without_iterations_is_the_unary():
    crf = DenseCRFRefiner(iterations=0)
    labels = np.array([[0, 1], [1, 0]], np.uint8)
    q = crf.label_marginals(labels, np.zeros((2, 2, 3), np.uint8), 0.7)
    np.testing.assert_allclose(q[1].numpy(), [[0.3, 0.7], [0.7, 0.3]],
                               atol=1e-6)
    with pytest.raises(ValueError, match='0 and 1'):
        crf.label_marginals(labels * 255, np.zeros((2, 2, 3), np.uint8))


def test_label_crf_follows_the_image():
    """A seed that overflows a uniform object by two pixels and a lone
    foreground pixel in the background: the CRF keeps the object and drops
    the rest."""
    image = np.zeros((24, 24, 3), np.uint8)
    image[6:18, 6:18] = 200
    seeds = np.zeros((24, 24), np.uint8)
    seeds[4:20, 4:20] = 1
    seeds[1, 22] = 1
    crf = DenseCRFRefiner(iterations=10, pos_xy_std=3, pos_w=3,
                          bi_xy_std=50, bi_rgb_std=5, bi_w=10, max_side=24)
    refined = crf.refine_labels(seeds, image, 0.7)
    assert refined[6:18, 6:18].all()
    assert refined[1, 22] == 0
    outside = np.ones((24, 24), bool)
    outside[6:18, 6:18] = False
    assert refined[outside].mean() < seeds[outside].mean() / 4


def test_refiner_needs_weights_for_a_frozen_backbone_and_a_fit(tmp_path):
    from mmwris.pseudo_labels import IRNRefiner
    refiner = IRNRefiner(crf=None)
    with pytest.raises(ValueError, match='pretrained'):
        refiner.fit([], str(tmp_path))
    with pytest.raises(RuntimeError, match='fit'):
        refiner.refine_cam(np.zeros((8, 8)), np.zeros((8, 8, 3), np.uint8))


IRN_CONFIG = osp.join(REPO, 'configs', 'tris',
                      'tris-irn_clip-tiny_1xb32-3k_toyrefer-128x128.py')
SMALL_IRN = ('pseudo_label_cfg.refiner.train.batch_size=4',
             'pseudo_label_cfg.refiner.train.epochs=1',
             'pseudo_label_cfg.refiner.train.crop_size=64',
             'pseudo_label_cfg.refiner.train.radius=5')


def test_irn_tool_runs_three_resumable_passes(toy_refer_root, tmp_path):
    """Seeds of every ref, IRN trained on them, masks; a rerun after losing
    masks redoes only those masks, byte for byte."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(IRN_CONFIG).model)
    step1_checkpoint = tmp_path / 'step1.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), step1_checkpoint)
    out = tmp_path / 'irn'
    cmd = tool(out, step1_checkpoint, toy_refer_root, *SMALL_IRN,
               config=IRN_CONFIG)
    proc = run_tool(cmd)
    assert 'pass 2/3' in proc.stdout + proc.stderr
    summary = json.loads((out / 'summary.json').read_text())
    refs = summary['refs']
    assert refs > 20 and summary['written'] == refs and not summary['failed']
    masks = sorted((out / 'masks').glob('*.png'))
    seeds = sorted((out / 'seeds').glob('*.png'))
    assert len(masks) == len(seeds) == len(list(
        (out / 'cams').glob('*.npy'))) == refs
    for path in seeds[:10]:
        assert set(np.unique(cv2.imread(str(path), -1))) <= {0, 1, 255}
    foreground = []
    for path in masks:
        mask = cv2.imread(str(path), -1)
        assert set(np.unique(mask)) <= {0, 1}
        foreground.append(mask.mean())
    assert 0 < np.mean(foreground) < 1
    weights = out / 'irn' / 'irn.pth'
    stamp = weights.stat().st_mtime_ns
    seed_stamp = seeds[0].stat().st_mtime_ns
    lost = masks[::3]
    reference = {p.name: p.read_bytes() for p in lost}
    for path in lost:
        path.unlink()
    run_tool(cmd)
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['written'] == len(lost)
    assert summary['skipped'] == refs - len(lost)
    assert weights.stat().st_mtime_ns == stamp
    assert seeds[0].stat().st_mtime_ns == seed_stamp
    for path in lost:
        assert path.read_bytes() == reference[path.name], path.name
