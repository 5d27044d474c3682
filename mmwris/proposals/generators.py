"""Class-agnostic mask proposal backends.

A backend maps an RGB uint8 image ``[H, W, 3]`` to binary masks
``[M, H, W]`` (uint8, 0/1) and scores ``[M]`` (float32, higher is better),
sorted by decreasing score; the runner keeps the top N. Backends never see
annotations. ``settings()`` gives what defines their output (stored in the
proposal index so that a resumed run cannot mix settings).
"""
import os.path as osp
from typing import Tuple

import cv2
import numpy as np
import torch
from scipy import ndimage

from mmwris.models.foundation.sam import ArchType, build_sam
from mmwris.registry import TASK_UTILS

ProposalOutput = Tuple[np.ndarray, np.ndarray]


def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8
            and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError('proposal backends take an RGB uint8 [H, W, 3] '
                         f'image, got {getattr(image, "dtype", None)} '
                         f'{getattr(image, "shape", None)}.')


def _sorted(masks: np.ndarray, scores: np.ndarray) -> ProposalOutput:
    """Order by decreasing score; equal scores keep their order."""
    order = np.argsort(-scores, kind='stable')
    return masks[order], scores[order]


@TASK_UTILS.register_module()
class SAMProposalGenerator:
    """Proposals from SAM's automatic mask generator.

    SAM is prompted with a regular ``points_per_side`` x ``points_per_side``
    grid; masks are filtered by predicted IoU and stability and
    de-duplicated by box NMS (``SamAutomaticMaskGenerator``). The score is
    ``predicted_iou * stability_score`` (``score='iou_stability'``, both in
    [0, 1]: confident *and* stable masks first) or ``predicted_iou`` alone
    (``score='predicted_iou'``).

    Args:
        arch (str | dict): SAM architecture, see :func:`build_sam`.
        checkpoint (str): Local SAM weights (required).
        points_per_side (int): Prompt grid side. Defaults to 32.
        points_per_batch (int): Prompts per decoder pass. Defaults to 64.
        pred_iou_thresh (float): Minimum predicted IoU. Defaults to 0.88.
        stability_score_thresh (float): Minimum stability. Defaults to 0.95.
        box_nms_thresh (float): Box NMS IoU threshold. Defaults to 0.7.
        crop_n_layers (int): Extra crop layers. Defaults to 0.
        min_mask_region_area (int): Remove holes and islands smaller than
            this (pixels). Defaults to 0.
        score (str): ``'iou_stability'`` or ``'predicted_iou'``.
        device (str): Device of SAM. Defaults to ``'cpu'``.
    """
    SCORES = ('iou_stability', 'predicted_iou')

    def __init__(self,
                 arch: ArchType,
                 checkpoint: str,
                 points_per_side: int = 32,
                 points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.88,
                 stability_score_thresh: float = 0.95,
                 box_nms_thresh: float = 0.7,
                 crop_n_layers: int = 0,
                 min_mask_region_area: int = 0,
                 score: str = 'iou_stability',
                 device: str = 'cpu') -> None:
        from segment_anything import SamAutomaticMaskGenerator

        if score not in self.SCORES:
            raise ValueError(f'score must be one of {self.SCORES}, not '
                             f'"{score}".')
        self.score = score
        self.options = dict(
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            min_mask_region_area=min_mask_region_area)
        self.arch = arch
        self.checkpoint = checkpoint
        model = build_sam(arch, checkpoint).to(device)
        self.mask_generator = SamAutomaticMaskGenerator(
            model, output_mode='binary_mask', **self.options)

    def settings(self) -> dict:
        return dict(type=type(self).__name__, arch=self.arch,
                    checkpoint=osp.abspath(self.checkpoint),
                    score=self.score, **self.options)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> ProposalOutput:
        """``image [H, W, 3]`` RGB uint8 -> masks ``[M, H, W]``, scores
        ``[M]``."""
        _check_image(image)
        records = self.mask_generator.generate(image)
        height, width = image.shape[:2]
        if not records:
            return (np.zeros((0, height, width), np.uint8),
                    np.zeros(0, np.float32))
        masks = np.stack([r['segmentation'] for r in records]).astype(
            np.uint8)
        iou = np.array([r['predicted_iou'] for r in records], np.float32)
        if self.score == 'iou_stability':
            stability = np.array([r['stability_score'] for r in records],
                                 np.float32)
            scores = iou * stability
        else:
            scores = iou
        return _sorted(masks, scores)


@TASK_UTILS.register_module()
class ColourRegionProposalGenerator:
    """Model-free proposals for flat-coloured synthetic images (toy data).

    The image is optionally median-filtered (``median_blur``; it removes
    pixel noise but also shape corners); its colours are quantised with
    k-means (``num_colours`` centres in CIE Lab, farthest-point
    initialisation from the pixel nearest the mean colour, Lloyd iterations
    on a strided subsample: deterministic; centres closer than
    ``merge_distance`` count as one colour, so a shaded background stays
    one region); each colour's connected components
    (``scipy.ndimage.label``, 4-connected) are the proposals. Components
    smaller than ``min_area`` pixels or larger than ``max_area_ratio`` of
    the image (background) are dropped. The score is the fill ratio of the
    component's bounding box, ``area / (box_w * box_h)`` in (0, 1]: compact
    regions first, ragged fragments last. Meaningless on natural photos;
    use SAM there.

    Args:
        num_colours (int): k-means centres. Defaults to 8.
        min_area (int): Minimum region area in pixels. Defaults to 16.
        max_area_ratio (float): Maximum region area / image area.
            Defaults to 0.5.
        median_blur (int): Median filter size (odd; 0 or 1: none).
            Defaults to 0.
        sample_stride (int): k-means fits on every n-th row and column.
            Defaults to 2.
        max_iters (int): Lloyd iterations. Defaults to 20.
        merge_distance (float): Centres closer than this (Lab units,
            single linkage) form one colour, so a shaded background stays
            one region. Defaults to 20.
    """

    def __init__(self,
                 num_colours: int = 8,
                 min_area: int = 16,
                 max_area_ratio: float = 0.5,
                 median_blur: int = 0,
                 sample_stride: int = 2,
                 max_iters: int = 20,
                 merge_distance: float = 20.0) -> None:
        if num_colours < 1:
            raise ValueError('num_colours must be >= 1.')
        if median_blur > 1 and median_blur % 2 == 0:
            raise ValueError('median_blur must be odd.')
        if not 0 < max_area_ratio <= 1:
            raise ValueError('max_area_ratio must be in (0, 1].')
        self.num_colours = num_colours
        self.min_area = min_area
        self.max_area_ratio = max_area_ratio
        self.median_blur = median_blur
        self.sample_stride = max(1, sample_stride)
        self.max_iters = max_iters
        self.merge_distance = merge_distance

    def settings(self) -> dict:
        return dict(type=type(self).__name__, num_colours=self.num_colours,
                    min_area=self.min_area,
                    max_area_ratio=self.max_area_ratio,
                    median_blur=self.median_blur,
                    sample_stride=self.sample_stride,
                    max_iters=self.max_iters,
                    merge_distance=self.merge_distance)

    def quantise(self, image: np.ndarray) -> np.ndarray:
        """``image [H, W, 3]`` RGB uint8 -> colour labels ``[H, W]``."""
        if self.median_blur > 1:
            image = cv2.medianBlur(image, self.median_blur)
        lab = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
        s = self.sample_stride
        samples = lab[::s, ::s].reshape(-1, 3).astype(np.float64)
        centres = self._init_centres(samples)
        for _ in range(self.max_iters):
            assign = self._nearest(samples, centres)
            updated = np.stack([
                samples[assign == k].mean(0) if (assign == k).any() else c
                for k, c in enumerate(centres)
            ])
            if np.allclose(updated, centres):
                break
            centres = updated
        pixels = lab.reshape(-1, 3).astype(np.float64)
        nearest = self._nearest(pixels, centres)
        return self._merge_close(centres)[nearest].reshape(image.shape[:2])

    def _merge_close(self, centres: np.ndarray) -> np.ndarray:
        """Label of each centre after single-linkage merging of centres
        closer than ``merge_distance`` (bands of a shaded background)."""
        groups = np.arange(len(centres))
        dist = np.sqrt(((centres[:, None] - centres[None])**2).sum(-1))
        for i, j in zip(*np.nonzero(dist < self.merge_distance)):
            a, b = groups[i], groups[j]
            if a != b:
                groups[groups == max(a, b)] = min(a, b)
        return groups

    def _init_centres(self, samples: np.ndarray) -> np.ndarray:
        first = np.argmin(((samples - samples.mean(0))**2).sum(1))
        centres = [samples[first]]
        dist = ((samples - centres[0])**2).sum(1)
        while len(centres) < self.num_colours and dist.max() > 0:
            centres.append(samples[np.argmax(dist)])
            dist = np.minimum(dist, ((samples - centres[-1])**2).sum(1))
        return np.stack(centres)

    @staticmethod
    def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
        dist = ((points[:, None, :] - centres[None])**2).sum(-1)
        return dist.argmin(1)

    def __call__(self, image: np.ndarray) -> ProposalOutput:
        """``image [H, W, 3]`` RGB uint8 -> masks ``[M, H, W]``, scores
        ``[M]``."""
        _check_image(image)
        height, width = image.shape[:2]
        labels = self.quantise(image)
        max_area = self.max_area_ratio * height * width
        masks, scores = [], []
        for colour in np.unique(labels):
            components, num = ndimage.label(labels == colour)
            if num == 0:
                continue
            areas = np.bincount(components.ravel(), minlength=num + 1)
            boxes = ndimage.find_objects(components)
            for index, box in enumerate(boxes, start=1):
                area = areas[index]
                if box is None or area < self.min_area or area > max_area:
                    continue
                box_area = (box[0].stop - box[0].start) * (
                    box[1].stop - box[1].start)
                masks.append((components == index).astype(np.uint8))
                scores.append(area / box_area)
        if not masks:
            return (np.zeros((0, height, width), np.uint8),
                    np.zeros(0, np.float32))
        return _sorted(np.stack(masks), np.array(scores, np.float32))

