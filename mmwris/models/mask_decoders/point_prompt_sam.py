"""Point prompts -> frozen SAM -> mask (PPT, and the naive CLIP-peak
baseline). Used by :class:`PPTSegmentor`, which owns the frozen SAM."""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from .base import BaseMaskDecoder


class SAMPromptMaskDecoder(BaseMaskDecoder):
    """Base of the SAM mask steps.

    :meth:`prompts` turns the head's outputs into point prompts;
    :meth:`sam_logits` runs the frozen SAM on them and returns SAM's mask
    logits on the padded network-input grid ``[B, 1, H, W]``, which the
    base class then resizes to each original image; :meth:`decode`
    thresholds them (``logit > threshold``, SAM's own 0 by default) and
    stores ``sigmoid(logit)`` as ``seg_logits``.

    Args:
        multimask (bool): SAM's three masks, the one with the highest
            predicted IoU kept.
        threshold (float): On SAM's mask logits.
    """
    needs_sam = True

    def __init__(self, multimask: bool = True,
                 threshold: float = 0.0) -> None:
        self.multimask = multimask
        self.threshold = float(threshold)

    def prompts(self, outputs: Dict[str, Tensor]):
        """``points [B, K, 2]`` (normalised ``(x, y)``), ``labels [B, K]``."""
        raise NotImplementedError

    def sam_logits(self, sam, embeddings: Tensor, outputs: Dict[str, Tensor],
                   size) -> Tensor:
        """SAM's chosen mask logits at the network-input ``size``."""
        points, labels = self.prompts(outputs)
        masks = sam.predict_masks(embeddings, points, labels,
                                  self.multimask)['masks']
        return F.interpolate(masks, size=tuple(size), mode='bilinear',
                             align_corners=False)

    def decode(self, sample, response: Tensor) -> None:
        self.set_mask(sample, response.sigmoid(), response > self.threshold,
                      mask_threshold=self.threshold)


@MODELS.register_module()
class PointPromptSAMDecoder(SAMPromptMaskDecoder):
    """PPT: the point generator's positive (label 1) and negative (label 0)
    points prompt SAM.

    Args:
        use_negatives (bool): False drops the negative points (ablation).
        multimask, threshold: See :class:`SAMPromptMaskDecoder`.
    """

    def __init__(self, use_negatives: bool = True, multimask: bool = True,
                 threshold: float = 0.0) -> None:
        super().__init__(multimask, threshold)
        self.use_negatives = use_negatives

    def prompts(self, outputs):
        if 'points' not in outputs:
            raise ValueError(
                'PointPromptSAMDecoder needs generated points (a PPTHead); '
                'a head that gives only a response (e.g. TRISHead) goes '
                'with ResponsePeakSAMDecoder.')
        points, labels = outputs['points'], outputs['labels']
        if not self.use_negatives:
            keep = labels[0] == 1
            points, labels = points[:, keep], labels[:, keep]
        return points, labels


@MODELS.register_module()
class ResponsePeakSAMDecoder(SAMPromptMaskDecoder):
    """The naive baseline: the peak of the CLIP response (the centre of
    its highest cell) as one positive point for SAM."""

    def prompts(self, outputs):
        response = outputs['response']
        batch, _, height, width = response.shape
        index = response.flatten(1).argmax(-1)
        ys = (torch.div(index, width, rounding_mode='floor').float() +
              0.5) / height
        xs = ((index % width).float() + 0.5) / width
        points = torch.stack([xs, ys], -1)[:, None]
        return points, torch.ones(batch, 1, device=response.device)
