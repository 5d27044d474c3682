import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from ..layers import ConditionalReferringStage, response_maps
from .response_head import ResponseHeadLosses

Cues = Sequence[Tuple[Tensor, Tensor]]


def add_stage_losses(losses: Dict[str, Tensor],
                     stage_losses: Dict[str, Tensor],
                     num_stages: int) -> None:
    """Accumulate one stage's losses as their mean over ``num_stages``
    (``acc_cls``: the latest stage's value)."""
    for name, value in stage_losses.items():
        if name == 'acc_cls':
            losses[name] = value
        else:
            losses[name] = losses.get(name, 0) + value / num_stages


def _per_image(x: Tensor, batch: int, dims: int) -> Tensor:
    """Expand a tensor shared by all images (``dims`` dims) to ``[B, ...]``."""
    if x.dim() == dims:
        return x.unsqueeze(0).expand(batch, *x.shape)
    if x.dim() != dims + 1 or x.shape[0] != batch:
        raise ValueError(f'expected {dims} dims (shared) or {dims + 1} with '
                         f'{batch} images first, got {tuple(x.shape)}')
    return x


@MODELS.register_module()
class PCNetHead(ResponseHeadLosses):
    """PCNet's multi-stage Conditional Referring Module (CRM) and its losses.

    ``v = norm(Conv1x1(c4))`` and ``l = norm(Linear(sentence))`` as in
    :class:`TRISHead`; then ``num_stages`` :class:`ConditionalReferringStage`
    with their own weights: stage ``k`` is conditioned on cue ``k`` (the
    phrases of the expression, the last stage on the full sentence), and the
    visual and text states carry from one stage to the next. Every stage
    yields a response map ``R_k[b, t] = exp(tau) <v_k,b, l_k,bt>`` with one
    shared learnable ``tau``.

    Losses (:meth:`loss`): classification (and calibration, if set) per
    stage, averaged over the stages (as TRIS, every image against the
    gathered batch texts); Region-aware Shrinking (``loss_ras``) on each
    image's own maps of all stages ``[B, S, h, w]`` and its mask proposals;
    Instance-aware Disambiguation (``loss_iad``) between the last-stage map
    of an expression and that of its partner (an expression of another
    object of the same image).

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
        loss_cls (dict): ``ClassificationLoss`` config.
        loss_cal (dict, optional): ``CalibrationLoss`` config.
        loss_ras (dict, optional): ``RegionShrinkingLoss`` config.
        loss_iad (dict, optional): ``InstanceDisambiguationLoss`` config.
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
                 loss_cls: ConfigType = dict(
                     type='ClassificationLoss', loss_weight=5.0),
                 loss_cal: OptConfigType = None,
                 loss_ras: OptConfigType = None,
                 loss_iad: OptConfigType = None,
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
        self.init_losses(loss_cls, loss_cal)
        self.loss_ras = MODELS.build(loss_ras) if loss_ras else None
        self.loss_iad = MODELS.build(loss_iad) if loss_iad else None

    @property
    def with_proposal_losses(self) -> bool:
        return self.loss_ras is not None or self.loss_iad is not None

    def forward(self, visual: Tensor, text: Tensor,
                cues: Cues) -> List[Tensor]:
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

    def predict(self, visual: Tensor, sentence: Tensor,
                cues: Cues) -> List[Tensor]:
        """Each image's own map at every stage: S ``[B, 1, h, w]``, with
        ``sentence [B, D]`` and per-image cues ``[B, 1, ...]``."""
        return self(visual, sentence[:, None], cues)

    def loss(self,
             visual: Tensor,
             sentence: Tensor,
             cues: Cues,
             data_samples: SampleList,
             images: Optional[Tensor] = None,
             offset: int = 0,
             proposals: Optional[tuple] = None,
             partner: Optional[Tuple[Tensor, Tensor, Cues]] = None,
             proposal_loss_scale: float = 1.0) -> Dict[str, Tensor]:
        """Per-stage ``loss_cls`` (averaged), ``acc_cls`` of the last stage,
        calibration per stage (averaged), and the RaS / IaD terms.

        Args:
            visual (Tensor): ``[B, in_channels, h, w]``.
            sentence (Tensor): ``[N, text_channels]`` gathered sentences;
                image ``b`` owns ``offset + b``.
            cues (list): S ``(tokens [N, Lc, C], mask [N, Lc])`` gathered.
            data_samples (list): The B samples.
            images (Tensor, optional): RGB in [0, 1] for the calibration.
            offset (int): This rank's first text.
            proposals (tuple, optional): ``proposals [B, M, h, w]`` on the
                map grid, ``valid [B, M]`` and the CLIP similarity
                ``[B, M]`` (or None); needed by RaS / IaD.
            partner (tuple, optional): For IaD: the indices ``[P]`` of the
                images with a partner, the partners' ``sentence [P, D]`` and
                per-image cues ``[P, 1, ...]``.
            proposal_loss_scale (float): Factor of the RaS / IaD terms
                (the segmentor's warm-up).
        """
        losses: Dict[str, Tensor] = {}
        own_maps = []
        for maps in self(visual, sentence, cues):
            stage_losses, own = self.classification_losses(maps, offset)
            own_maps.append(own)
            stage_losses.update(
                self.calibration_losses(own, images, data_samples))
            add_stage_losses(losses, stage_losses, self.num_stages)
        if not self.with_proposal_losses:
            return losses
        own_maps = torch.stack(own_maps, dim=1)
        grid, valid, clip_sim = proposals
        proposal_losses = {}
        if self.loss_ras is not None:
            proposal_losses.update(
                self.loss_ras(own_maps, grid, valid, clip_sim=clip_sim))
        if self.loss_iad is not None:
            proposal_losses.update(
                self.partner_losses(visual, own_maps[:, -1], grid, valid,
                                    partner))
        losses.update({name: value * proposal_loss_scale
                       for name, value in proposal_losses.items()})
        return losses

    def partner_losses(self, visual: Tensor, own_last: Tensor,
                       proposals: Tensor, valid: Tensor,
                       partner: Optional[Tuple[Tensor, Tensor, Cues]]
                       ) -> Dict[str, Tensor]:
        """IaD between each expression's last-stage map ``own_last
        [B, h, w]`` and its partner's map on the same image."""
        if partner is None:
            empty = own_last[:0]
            return self.loss_iad(empty, empty, proposals[:0], valid[:0])
        index, sentence, cues = partner
        partner_maps = self.predict(visual[index], sentence, cues)[-1][:, 0]
        return self.loss_iad(own_last[index], partner_maps,
                             proposals[index], valid[index])
