"""IRN as a pseudo-label refiner: seeds, the label-unary CRF, the
``IRNRefiner`` contract and the three-pass tool on the toy data."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from conftest import REPO
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
