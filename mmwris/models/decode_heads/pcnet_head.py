import math
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmwris.registry import MODELS
from ..layers import ConditionalReferringStage, response_maps


def _per_image(x: Tensor, batch: int, dims: int) -> Tensor:
    """Expand a tensor shared by all images (``dims`` dims) to ``[B, ...]``."""
    if x.dim() == dims:
        return x.unsqueeze(0).expand(batch, *x.shape)
    if x.dim() != dims + 1 or x.shape[0] != batch:
        raise ValueError(f'expected {dims} dims (shared) or {dims + 1} with '
                         f'{batch} images first, got {tuple(x.shape)}')
    return x


@MODELS.register_module()
class PCNetHead(BaseModule):
    """PCNet's multi-stage Conditional Referring Module (CRM).

    ``v = norm(Conv1x1(c4))`` and ``l = norm(Linear(sentence))`` as in
    :class:`TRISHead`; then ``num_stages`` :class:`ConditionalReferringStage`
    with their own weights: stage ``k`` is conditioned on cue ``k`` (the
    phrases of the expression, the last stage on the full sentence), and the
    visual and text states carry from one stage to the next. Every stage
    yields a response map ``R_k[b, t] = exp(tau) <v_k,b, l_k,bt>`` with one
    shared learnable ``tau``.

    Args:
        in_channels (int): Channels of the visual feature.
        text_channels (int): Width of the sentence embeddings.
        token_channels (int): Width of the cue word tokens (the CLIP text
            transformer width).
        channels (int): Common width C.
        num_stages (int): CRM stages N (3 in the paper).
        alpha (float): Residual weight of the visual prompting update.
        beta (float): Residual weight of the text prompting update.
        gamma (float): Residual weight of the cue modulation.
        logit_scale_init (float): Initial ``tau`` (``log(1 / 0.07)``).
    """

    def __init__(self,
                 in_channels: int,
                 text_channels: int,
                 token_channels: int,
                 channels: int,
                 num_stages: int = 3,
                 alpha: float = 0.1,
                 beta: float = 0.1,
                 gamma: float = 0.1,
                 logit_scale_init: float = math.log(1 / 0.07),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_stages < 1:
            raise ValueError(f'num_stages must be >= 1, got {num_stages}.')
        self.in_channels = in_channels
        self.text_channels = text_channels
        self.channels = channels
        self.num_stages = num_stages
        self.vis_proj = nn.Conv2d(in_channels, channels, 1)
        self.text_proj = nn.Linear(text_channels, channels)
        self.cue_proj = nn.Linear(token_channels, channels)
        self.stages = nn.ModuleList(
            ConditionalReferringStage(channels, alpha, beta, gamma)
            for _ in range(num_stages))
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))

    def forward(self, visual: Tensor, text: Tensor,
                cues: Sequence[Tuple[Tensor, Tensor]]) -> List[Tensor]:
        """Response maps of every stage.

        Args:
            visual (Tensor): ``[B, in_channels, h, w]``.
            text (Tensor): ``[T, text_channels]`` sentences shared by all
                images, or ``[B, T, text_channels]`` per image.
            cues (list[tuple]): One ``(tokens, mask)`` per stage: cue word
                tokens ``[T, Lc, token_channels]`` and their valid mask
                ``[T, Lc]`` (or both with a leading ``B``).

        Returns:
            list[Tensor]: ``num_stages`` maps ``[B, T, h, w]``.
        """
        if len(cues) != self.num_stages:
            raise ValueError(f'{self.num_stages} CRM stages need as many '
                             f'cues, got {len(cues)}.')
        batch = visual.shape[0]
        visual = F.normalize(self.vis_proj(visual), dim=1)
        text = _per_image(F.normalize(self.text_proj(text), dim=-1), batch, 2)
        maps = []
        for stage, (tokens, mask) in zip(self.stages, cues):
            cue = _per_image(self.cue_proj(tokens), batch, 3)
            cue_mask = _per_image(mask.bool(), batch, 2)
            visual, text = stage(visual, text, cue, cue_mask)
            maps.append(response_maps(visual, text, self.logit_scale))
        return maps
