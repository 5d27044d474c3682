import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from ..layers import BilateralPrompting, response_maps
from .response_head import ResponseHeadLosses


@MODELS.register_module()
class TRISHead(ResponseHeadLosses):
    """TRIS step-1 head: text-to-image response maps and their losses.

    ``v = norm(Conv1x1(c4))``, ``l = norm(Linear(sentence))``, then
    :class:`BilateralPrompting` and ``R[b, t] = exp(tau) <v_b, l_bt>``
    (by default the cosine of the updated features, with a learned
    ``tau``).

    Args:
        in_channels (int): Channels of the visual feature.
        text_channels (int): Width of the sentence embeddings.
        channels (int): Common width C.
        alpha (float): Residual weight of the visual prompting update.
        beta (float): Residual weight of the text prompting update.
        logit_scale_init (float): Initial ``tau`` (``log(1 / 0.07)``).
        loss_cls (dict): ``ClassificationLoss`` config.
        loss_cal (dict, optional): ``CalibrationLoss`` config; None disables
            the calibration.
        renormalize_after_prompting (bool): L2-normalise the prompted
            features before the dot product (a cosine). The released TRIS
            does not (False): its features are unit vectors only before
            the prompt updates are added.
        learn_temperature (bool): Train ``tau``. False (the released TRIS,
            where ``tau`` is in no optimiser group) keeps it a parameter
            with ``requires_grad=False``: the state-dict key
            ``logit_scale`` stays and optimisers skip it.
    """

    def __init__(self,
                 in_channels: int,
                 text_channels: int,
                 channels: int,
                 alpha: float = 0.1,
                 beta: float = 0.1,
                 logit_scale_init: float = math.log(1 / 0.07),
                 loss_cls: ConfigType = dict(
                     type='ClassificationLoss', loss_weight=5.0),
                 loss_cal: OptConfigType = None,
                 renormalize_after_prompting: bool = True,
                 learn_temperature: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.text_channels = text_channels
        self.channels = channels
        self.vis_proj = nn.Conv2d(in_channels, channels, 1)
        self.text_proj = nn.Linear(text_channels, channels)
        self.prompting = BilateralPrompting(channels, alpha, beta)
        self.renormalize_after_prompting = renormalize_after_prompting
        self.logit_scale = nn.Parameter(
            torch.tensor(float(logit_scale_init)),
            requires_grad=learn_temperature)
        self.init_losses(loss_cls, loss_cal)

    def forward(self, visual: Tensor, text: Tensor) -> Tensor:
        """Score every image against texts.

        Args:
            visual (Tensor): ``[B, in_channels, h, w]``.
            text (Tensor): ``[T, text_channels]`` shared by all images, or
                ``[B, T, text_channels]`` per image.

        Returns:
            Tensor: ``maps [B, T, h, w]``.
        """
        visual, text = self.prompting(*self.project(visual, text))
        return response_maps(visual, text, self.logit_scale,
                              self.renormalize_after_prompting)

    def project(self, visual: Tensor, text: Tensor):
        """Unit features before the prompting: ``[B, C, h, w]`` and
        ``[T, C]`` (or ``[B, T, C]``)."""
        return (F.normalize(self.vis_proj(visual), dim=1),
                F.normalize(self.text_proj(text), dim=-1))

    def loss(self, visual: Tensor, sentence: Tensor,
             data_samples: SampleList, images: Optional[Tensor] = None,
             offset: int = 0) -> Dict[str, Tensor]:
        """``loss_cls``, ``acc_cls`` (and ``loss_cal_pos``/``loss_cal_neg``).

        Args:
            visual (Tensor): ``[B, in_channels, h, w]``.
            sentence (Tensor): ``[N, text_channels]``: the sentences of the
                (gathered) batch; image ``b`` owns ``offset + b``.
            data_samples (list): The B samples (``text``, ``neg_texts``).
            images (Tensor, optional): ``[B, 3, H, W]`` RGB in [0, 1], for
                the calibration.
            offset (int): This rank's first text in ``sentence``.
        """
        losses, own = self.classification_losses(
            self(visual, sentence), offset)
        losses.update(self.calibration_losses(own, images, data_samples))
        return losses

    def predict(self, visual: Tensor, sentence: Tensor) -> Tensor:
        """``[B, 1, h, w]``: each image's response to its own sentence
        ``sentence [B, text_channels]``."""
        return self(visual, sentence[:, None])
