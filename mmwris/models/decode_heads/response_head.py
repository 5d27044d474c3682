"""Shared losses of the response-map heads (TRIS step 1, PCNet)."""
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.model import BaseModule
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from mmwris.structures import fields
from ..layers import image_text_scores


class ResponseHeadLosses(BaseModule):
    """Base of heads that score images against texts with response maps.

    Owns TRIS's image-level classification loss (every image against every
    text of the globally gathered batch, own text positive) and the
    optional frozen-CLIP calibration loss; subclasses build their layers
    first and then call :meth:`init_losses`, so the random initialisation
    of the layers does not depend on the losses.
    """

    def init_losses(self, loss_cls: ConfigType,
                    loss_cal: OptConfigType) -> None:
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_cal = MODELS.build(loss_cal) if loss_cal else None

    def classification_losses(self, maps: Tensor,
                              offset: int) -> Tuple[Dict[str, Tensor], Tensor]:
        """``loss_cls`` and ``acc_cls`` of ``maps [B, N, h, w]`` (image ``b``
        owns text ``offset + b``), and the own maps ``[B, h, w]``."""
        scores = image_text_scores(maps)
        rows = torch.arange(maps.shape[0], device=maps.device)
        cols = rows + offset
        target = torch.zeros_like(scores)
        target[rows, cols] = 1
        losses = {self.loss_cls.loss_name: self.loss_cls(scores, target)}
        with torch.no_grad():
            losses['acc_cls'] = (scores.argmax(1) == cols).float().mean()
        return losses, maps[rows, cols]

    def calibration_losses(self, own: Tensor, images: Optional[Tensor],
                           data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_cal_pos``/``loss_cal_neg`` of the own maps ``[B, h, w]``
        (none without ``loss_cal``)."""
        if self.loss_cal is None:
            return {}
        if images is None:
            raise ValueError('The calibration loss needs the RGB images.')
        return self.loss_cal(
            own[:, None], images,
            [sample.metainfo[fields.TEXT] for sample in data_samples],
            neg_texts_of(data_samples))


def neg_texts_of(data_samples: SampleList) -> List[List[str]]:
    """The calibration negatives of every sample."""
    return [
        list(sample.metainfo.get(fields.NEG_TEXTS) or [])
        for sample in data_samples
    ]
