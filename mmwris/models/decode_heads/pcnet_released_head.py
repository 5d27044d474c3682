import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from mmwris.structures import fields
from ..layers import response_maps
from ..layers.conditional_referring_released import (
    ReleasedConditionalReferringStage, unit)
from .pcnet_head import add_stage_losses
from .response_head import ResponseHeadLosses, neg_texts_of


@MODELS.register_module()
class PCNetReleasedHead(ResponseHeadLosses):
    """PCNet's CRM and losses as the released code computes them
    (zaiquanyang/Boosting_WRIS, ``model/model_prog_v5.py``); the clean
    re-design is :class:`PCNetHead`.

    ``v = unit(Conv1x1(c4))``, ``ref = unit(Linear(sentence))`` and the cue
    of stage ``k < K - 1`` is ``unit(Linear(phrase_k))`` with the *same*
    linear (phrases encoded as sentences, EOT feature); the last stage uses
    ``ref``. ``K = num_stages`` :class:`ReleasedConditionalReferringStage`
    (block ``k`` for stage ``k``) carry ``(v, main)``; stage ``k`` scores
    ``R_k[b, j] = exp(tau) <v_k,b, lan_k,bj>`` (no re-normalisation, ``tau``
    not trained).

    The forward takes ``T`` texts, a multiple of the B images (text ``j``
    belongs to image ``j mod B``): in training the B expressions followed
    by their B IaD partners (``joint_partner``, released: the partners take
    part in the batch-wide attention), at test time one image at a time
    (the released evaluation runs batch 1).

    Losses: per stage, ``loss_cls`` over the B expressions (image ``b``
    against expression ``b'``, as TRIS) and the calibration (positive text
    of stage ``k``: phrase ``k``, the last stage the expression), both
    averaged over the stages; ``loss_ras_*``
    (:class:`ReleasedRegionShrinkingLoss`) and ``loss_iad``
    (:class:`ReleasedInstanceDisambiguationLoss`).

    Args:
        in_channels (int): Channels of the visual feature.
        text_channels (int): Width of the sentence embeddings.
        channels (int): Common width C (released ``hidden_dim``).
        num_stages (int): K (released ``--K_Iters``; at most
            ``num_blocks``).
        num_blocks (int, optional): Blocks built (the released network
            always has 4, so its checkpoints load strictly); blocks from
            ``num_stages`` on are frozen and unused. Defaults to
            ``num_stages``.
        alpha, beta, gamma (float): Residual weights (0.1 released).
        cue_attention (str): See :class:`ReleasedConditionalReferringStage`.
        renormalize (bool): Re-normalise the carried states every stage.
        joint_partner (bool): Encode the IaD partners in the same forward
            (released) or in a separate one (their maps do not change the
            expressions' maps).
        stage_positive (str): ``'phrase'`` (released) or ``'sentence'``:
            the calibration's positive text at the stages before the last.
        logit_scale_init (float): ``tau`` (``log(1 / 0.07)``).
        learn_temperature (bool): Train ``tau`` (released: no).
        loss_cls, loss_cal, loss_ras, loss_iad (dict): Loss configs
            (``loss_ras`` / ``loss_iad`` optional).
    """
    # PCNetSegmentor passes the cues as sentence embeddings [T, K, D].
    cue_input = 'sentence'

    def __init__(self,
                 in_channels: int,
                 text_channels: int,
                 channels: int,
                 num_stages: int = 3,
                 num_blocks: Optional[int] = None,
                 alpha: float = 0.1,
                 beta: float = 0.1,
                 gamma: float = 0.1,
                 cue_attention: str = 'released',
                 renormalize: bool = True,
                 joint_partner: bool = True,
                 stage_positive: str = 'phrase',
                 logit_scale_init: float = math.log(1 / 0.07),
                 learn_temperature: bool = False,
                 loss_cls: ConfigType = dict(
                     type='ClassificationLoss', loss_weight=5.0),
                 loss_cal: OptConfigType = None,
                 loss_ras: OptConfigType = None,
                 loss_iad: OptConfigType = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        num_blocks = num_stages if num_blocks is None else num_blocks
        if not 1 <= num_stages <= num_blocks:
            raise ValueError(f'need 1 <= num_stages ({num_stages}) <= '
                             f'num_blocks ({num_blocks}).')
        if stage_positive not in ('phrase', 'sentence'):
            raise ValueError("stage_positive must be 'phrase' or "
                             f"'sentence', got {stage_positive!r}")
        self.in_channels = in_channels
        self.text_channels = text_channels
        self.channels = channels
        self.num_stages = num_stages
        self.joint_partner = joint_partner
        self.stage_positive = stage_positive
        self.vis_proj = nn.Conv2d(in_channels, channels, 1)
        self.text_proj = nn.Linear(text_channels, channels)
        self.stages = nn.ModuleList(
            ReleasedConditionalReferringStage(
                channels, alpha, beta, gamma, cue_attention, renormalize)
            for _ in range(num_blocks))
        for block in self.stages[num_stages:]:
            block.requires_grad_(False)
        self.logit_scale = nn.Parameter(
            torch.tensor(float(logit_scale_init)),
            requires_grad=learn_temperature)
        self.init_losses(loss_cls, loss_cal)
        self.loss_ras = MODELS.build(loss_ras) if loss_ras else None
        self.loss_iad = MODELS.build(loss_iad) if loss_iad else None

    @property
    def with_proposal_losses(self) -> bool:
        return self.loss_ras is not None or self.loss_iad is not None

    def stage_states(self, visual: Tensor, cues: Tensor) -> List[dict]:
        """Run the K stages.

        Args:
            visual (Tensor): ``[B, in_channels, h, w]``.
            cues (Tensor): ``[T, K, text_channels]`` sentence embeddings of
                the cues of every text: phrases ``0..K-2`` then the
                expression itself.

        Returns:
            list[dict]: per stage ``visual [B, C, h, w]``, ``main [T, C]``,
            ``lan [B, T, C]`` and ``maps [B, T, h, w]``.
        """
        if cues.dim() != 3 or cues.shape[1] < self.num_stages:
            raise ValueError(f'cues must be [T, {self.num_stages}, D], got '
                             f'{tuple(cues.shape)}')
        visual = F.normalize(self.vis_proj(visual), dim=1, eps=0.0)
        projected = self.text_proj(cues)
        main = unit(projected[:, -1])
        states = []
        for k in range(self.num_stages):
            last = k == self.num_stages - 1
            cue = unit(projected[:, -1 if last else k])
            visual, main, lan = self.stages[k](visual, main, cue)
            states.append(dict(visual=visual, main=main, lan=lan,
                               maps=response_maps(visual, lan,
                                                  self.logit_scale, False)))
        return states

    def forward(self, visual: Tensor, cues: Tensor) -> List[Tensor]:
        """Stage maps ``[B, T, h, w]`` (arguments as :meth:`stage_states`)."""
        return [state['maps'] for state in self.stage_states(visual, cues)]

    def predict(self, visual: Tensor, cues: Tensor) -> List[Tensor]:
        """Each image alone with its own expression (the released batch-1
        evaluation): K maps ``[B, 1, h, w]``; ``cues [B, K, D]``."""
        per_image = [
            self(visual[i:i + 1], cues[i:i + 1])
            for i in range(visual.shape[0])
        ]
        return [torch.cat(maps, dim=0) for maps in zip(*per_image)]

    def loss(self,
             visual: Tensor,
             cues: Tensor,
             data_samples: SampleList,
             images: Optional[Tensor] = None,
             proposals: Optional[tuple] = None,
             partner: Optional[tuple] = None,
             stage_texts: Optional[Sequence[List[str]]] = None,
             image_size: Optional[Sequence[int]] = None,
             step: int = 0,
             proposal_loss_scale: float = 1.0) -> Dict[str, Tensor]:
        """Per-stage ``loss_cls`` / calibration (averaged), ``acc_cls`` of
        the last stage, RaS and IaD.

        Args:
            visual (Tensor): ``[B, in_channels, h, w]``.
            cues (Tensor): ``[B, K, D]`` of the B expressions.
            data_samples (list): The B samples.
            images (Tensor, optional): The calibration images.
            proposals (tuple, optional): ``(proposals [B, M, g, g],
                clip_score [B, M])`` for RaS / IaD.
            partner (tuple, optional): ``(cues [B, K, D], mark [B])`` of
                the IaD partners (``mark``: same image).
            stage_texts (list, optional): Per stage the B positive texts
                of the calibration (default: the expressions).
            image_size (tuple, optional): ``(H, W)`` of the network input
                (RaS / IaD resize the maps to it first).
            step (int): Training iteration (RaS pair draw).
            proposal_loss_scale (float): Factor of RaS / IaD.
        """
        batch = visual.shape[0]
        joint = partner is not None and self.joint_partner
        all_cues = torch.cat([cues, partner[0]]) if joint else cues
        stage_maps = self(visual, all_cues)
        if partner is not None and not joint:
            stage_maps_partner = self(visual, partner[0])
        losses: Dict[str, Tensor] = {}
        own, own_partner = [], []
        rows = torch.arange(batch, device=visual.device)
        for k, maps in enumerate(stage_maps):
            stage_losses, own_k = self.classification_losses(
                maps[:, :batch], 0)
            own.append(own_k)
            if partner is not None:
                source = maps[:, batch:] if joint else stage_maps_partner[k]
                own_partner.append(source[rows, rows])
            if self.loss_cal is not None:
                if images is None:
                    raise ValueError('The calibration loss needs images.')
                texts = self.positive_texts(k, data_samples, stage_texts)
                stage_losses.update(
                    self.loss_cal(own_k[:, None], images, texts,
                                  neg_texts_of(data_samples)))
            add_stage_losses(losses, stage_losses, self.num_stages)
        if not self.with_proposal_losses:
            return losses
        if proposals is None or image_size is None:
            raise ValueError('RaS / IaD need the proposals and image_size.')
        own = torch.stack(own, dim=1)
        grid, clip_score = proposals
        extra = {}
        if self.loss_ras is not None:
            extra.update(self.loss_ras(own, grid, clip_score, image_size,
                                       step=step))
        if self.loss_iad is not None:
            if partner is None:
                raise ValueError('IaD needs the partner expressions.')
            extra.update(self.loss_iad(own, torch.stack(own_partner, 1),
                                       grid, partner[1], image_size))
        losses.update({name: value * proposal_loss_scale
                       for name, value in extra.items()})
        return losses

    def positive_texts(self, stage: int, data_samples: SampleList,
                       stage_texts: Optional[Sequence[List[str]]]
                       ) -> List[str]:
        """The calibration's positive texts of ``stage``."""
        last = stage == self.num_stages - 1
        if stage_texts is None or last or self.stage_positive == 'sentence':
            return [sample.metainfo[fields.TEXT] for sample in data_samples]
        return list(stage_texts[stage])
