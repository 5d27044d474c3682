"""PPT's point generator (docs/methods/ppt.md)."""
import math
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from mmwris.registry import MODELS
from mmwris.structures import fields
from ..layers import response_maps
from ..utils.proposal_ops import normalize_response
from .response_head import neg_texts_of
from .tris_head import TRISHead


def grid_centers(height: int, width: int, device=None) -> Tensor:
    """``[h * w, 2]`` normalised ``(x, y)`` of the cell centres."""
    ys = (torch.arange(height, device=device).float() + 0.5) / height
    xs = (torch.arange(width, device=device).float() + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([grid_x, grid_y], -1).reshape(-1, 2)


def soft_argmax(heat: Tensor, window: Optional[int] = None) -> Tensor:
    """Points ``[B, K, 2]`` of heat maps ``[B, K, h, w]`` (probabilities).

    ``window=None``: the global soft-argmax ``sum_p H(p) c_p``. An integer
    ``r``: the local soft-argmax, the same mean over the ``(2r+1)^2``
    cells around the heat map's mode (renormalised), so that a map with
    two modes gives a point on one of them rather than between them; it
    is differentiable in the heat values inside the window.
    """
    height, width = heat.shape[-2:]
    centers = grid_centers(height, width, heat.device)
    flat = heat.flatten(2)
    if window is None:
        return flat @ centers
    mode = flat.argmax(-1)
    row = torch.div(mode, width, rounding_mode='floor')
    col = mode % width
    rows = torch.arange(height, device=heat.device)
    cols = torch.arange(width, device=heat.device)
    near = (((rows[None, None] - row[..., None]).abs() <= window)[..., None]
            & ((cols[None, None] - col[..., None]).abs() <= window)[
                ..., None, :])
    weights = flat * near.flatten(2)
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    return weights @ centers


def fourier_positions(centers: Tensor, num_freqs: int) -> Tensor:
    """``[P, 4 * num_freqs]`` sin/cos features of normalised positions."""
    freqs = 2.0**torch.arange(num_freqs, device=centers.device) * math.pi
    angles = centers[:, :, None] * freqs  # [P, 2, F]
    return torch.cat([angles.sin(), angles.cos()], -1).flatten(1)


@MODELS.register_module()
class PPTHead(TRISHead):
    """Point generator: TRIS's response plus P positive and N negative
    learned point queries.

    The response branch is :class:`TRISHead` (projections, bilateral
    prompting, ``R = exp(tau) cos``), trained with the localisation loss.
    The point generator is a small transformer decoder: ``P + N`` learned
    queries plus a projection of the sentence embedding attend over the
    memory ``m_p = v_p + pos(p) + W r_p`` (the prompted visual feature of
    the own expression, a Fourier position code and the min-max
    normalised own response ``r``). Query ``k`` gives the heat map::

        H_k = softmax_p((<W_q q_k, W_k m_p> / sqrt(C) + a_k r_p) / T)

    (``a_k`` a learned response prior, ``+prior`` for positive and
    ``-prior`` for negative queries at initialisation) and the point
    ``p_k = sum_p H_k(p) c_p`` (soft-argmax over the cell centres, by
    default locally around the mode, so the coordinates are
    differentiable), normalised ``(x, y)`` in [0, 1] of the
    network input; the SAM wrapper maps them to its pixels.

    Args:
        in_channels, text_channels, channels, alpha, beta,
            logit_scale_init, renormalize_after_prompting,
            learn_temperature: As :class:`TRISHead`.
        num_positive (int): P (>= 1).
        num_negative (int): N (>= 0).
        num_layers (int): Decoder layers.
        num_heads (int): Attention heads (must divide ``channels``).
        ffn_channels (int): Decoder feed-forward width (default 2 C).
        num_freqs (int): Fourier frequencies of the position code.
        response_prior (float): Initial ``|a_k|``.
        heat_temperature (float): ``T``.
        point_window (int, optional): The read-out of the points:
            None the global soft-argmax, ``r`` the local soft-argmax in
            the ``(2r+1)^2`` cells around the mode (:func:`soft_argmax`).
        loss_cls (dict): Localisation (``ClassificationLoss``).
        loss_cal (dict, optional): Response-level ``CalibrationLoss``.
        loss_mask_cal (dict, optional): ``PPTMaskCalibrationLoss`` (SAM's
            mask scored by a frozen CLIP).
        loss_neg (dict, optional): ``PPTNegativePointLoss``.
        loss_spread (dict, optional): ``PPTSpreadLoss``.
        loss_select (dict, optional): ``PPTPointSelectionLoss`` (which
            object the positive points prompt, scored by a frozen CLIP).
    """

    def __init__(self,
                 in_channels: int,
                 text_channels: int,
                 channels: int,
                 num_positive: int = 3,
                 num_negative: int = 2,
                 num_layers: int = 2,
                 num_heads: int = 4,
                 ffn_channels: Optional[int] = None,
                 num_freqs: int = 4,
                 response_prior: float = 8.0,
                 heat_temperature: float = 1.0,
                 point_window: Optional[int] = 1,
                 alpha: float = 0.1,
                 beta: float = 0.1,
                 logit_scale_init: float = math.log(1 / 0.07),
                 renormalize_after_prompting: bool = True,
                 learn_temperature: bool = True,
                 loss_cls: ConfigType = dict(
                     type='ClassificationLoss', loss_weight=5.0),
                 loss_cal: OptConfigType = None,
                 loss_mask_cal: OptConfigType = None,
                 loss_neg: OptConfigType = None,
                 loss_spread: OptConfigType = None,
                 loss_select: OptConfigType = None,
                 init_cfg=None) -> None:
        if num_positive < 1 or num_negative < 0:
            raise ValueError('PPTHead needs num_positive >= 1 and '
                             f'num_negative >= 0, got {num_positive}, '
                             f'{num_negative}.')
        super().__init__(
            in_channels, text_channels, channels, alpha=alpha, beta=beta,
            logit_scale_init=logit_scale_init, loss_cls=loss_cls,
            loss_cal=loss_cal,
            renormalize_after_prompting=renormalize_after_prompting,
            learn_temperature=learn_temperature, init_cfg=init_cfg)
        self.num_positive = num_positive
        self.num_negative = num_negative
        self.num_freqs = num_freqs
        self.heat_temperature = heat_temperature
        self.point_window = point_window
        num_points = num_positive + num_negative
        self.query_embed = nn.Embedding(num_points, channels)
        self.query_text = nn.Linear(text_channels, channels)
        self.pos_proj = nn.Linear(4 * num_freqs, channels)
        self.response_proj = nn.Linear(1, channels)
        layer = nn.TransformerDecoderLayer(
            channels, num_heads, dim_feedforward=ffn_channels or 2 * channels,
            dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers)
        self.point_query = nn.Linear(channels, channels)
        self.point_key = nn.Linear(channels, channels)
        self.response_prior = nn.Parameter(torch.tensor(
            [response_prior] * num_positive +
            [-response_prior] * num_negative))
        self.loss_mask_cal = MODELS.build(
            loss_mask_cal) if loss_mask_cal else None
        self.loss_neg = MODELS.build(loss_neg) if loss_neg else None
        self.loss_spread = MODELS.build(loss_spread) if loss_spread else None
        self.loss_select = MODELS.build(loss_select) if loss_select else None

    @property
    def num_points(self) -> int:
        return self.num_positive + self.num_negative

    def point_labels(self, batch: int, device=None) -> Tensor:
        """``[B, P + N]``: 1 for the positive, 0 for the negative points."""
        labels = torch.zeros(batch, self.num_points, device=device)
        labels[:, :self.num_positive] = 1
        return labels

    def generate(self, visual: Tensor, sentence: Tensor) -> Dict[str, Tensor]:
        """Points of each image for its own expression.

        Args:
            visual (Tensor): ``[B, in_channels, h, w]``.
            sentence (Tensor): ``[B, text_channels]``.

        Returns:
            dict: ``response [B, 1, h, w]`` (raw own response), ``heat
            [B, K, h, w]`` (probabilities), ``points [B, K, 2]``
            (normalised ``(x, y)``), ``labels [B, K]`` (K = P + N,
            positives first).
        """
        batch, _, height, width = visual.shape
        v, text = self.prompting(*self.project(visual, sentence[:, None]))
        response = response_maps(v, text, self.logit_scale,
                                 self.renormalize_after_prompting)
        prior = normalize_response(response.detach(), 'minmax').flatten(1)
        centers = grid_centers(height, width, visual.device)
        memory = (v.flatten(2).transpose(1, 2) +
                  self.pos_proj(fourier_positions(centers, self.num_freqs))
                  + self.response_proj(prior[..., None]))
        queries = (self.query_embed.weight[None] +
                   self.query_text(sentence)[:, None])
        queries = self.decoder(queries, memory)
        logits = torch.einsum('bkc,bpc->bkp', self.point_query(queries),
                              self.point_key(memory)) / math.sqrt(
                                  self.channels)
        logits = logits + self.response_prior[None, :, None] * prior[:, None]
        heat = torch.softmax(logits / self.heat_temperature, -1)
        return dict(response=response,
                    heat=heat.view(batch, -1, height, width),
                    points=soft_argmax(heat.view(batch, -1, height, width),
                                       self.point_window),
                    labels=self.point_labels(batch, visual.device))

    @property
    def needs_sam(self) -> bool:
        """Whether the training losses need SAM's masks."""
        return (self.loss_mask_cal is not None
                or self.loss_select is not None
                or (self.loss_neg is not None and self.num_negative > 0))

    @property
    def needs_negative_texts(self) -> bool:
        return self.loss_neg is not None and self.num_negative > 0

    @torch.no_grad()
    def shares(self, visual: Tensor, own: Tensor,
               neg_sentence: Optional[List[Optional[Tensor]]]):
        """Own and other-expression shares ``[B, h, w]`` of the joint
        softmax over (background = 1, own, the image's negatives).

        ``own`` is the raw own response ``[B, 1, h, w]``; ``neg_sentence``
        one ``[K_b, D]`` tensor (or None) per image. Without negatives the
        other share is zero and the own share ``sigmoid(R - 1)``."""
        background = torch.ones_like(own)
        if not neg_sentence or all(n is None or len(n) == 0
                                   for n in neg_sentence):
            share = torch.softmax(torch.cat([background, own], 1), 1)
            return share[:, 1], None
        most = max(len(n) for n in neg_sentence if n is not None)
        dim = next(n for n in neg_sentence if n is not None).shape[-1]
        padded = own.new_zeros(own.shape[0], most, dim)
        valid = torch.zeros(own.shape[0], most, dtype=torch.bool,
                            device=own.device)
        for b, negs in enumerate(neg_sentence):
            if negs is not None and len(negs):
                padded[b, :len(negs)] = negs
                valid[b, :len(negs)] = True
        others = self(visual, padded)  # [B, most, h, w]
        others = others.masked_fill(~valid[:, :, None, None], float('-inf'))
        share = torch.softmax(torch.cat([background, own, others], 1), 1)
        return share[:, 1], share[:, 2:].sum(1)

    def loss(self,
             visual: Tensor,
             sentence: Tensor,
             data_samples: SampleList,
             images: Optional[Tensor] = None,
             offset: int = 0,
             neg_sentence: Optional[List[Optional[Tensor]]] = None,
             sam=None,
             sam_embeddings: Optional[Callable[[], Tensor]] = None
             ) -> Dict[str, Tensor]:
        """All PPT losses.

        Args:
            visual (Tensor): ``[B, in_channels, h, w]``.
            sentence (Tensor): ``[N, text_channels]`` (gathered); image
                ``b`` owns ``offset + b``.
            data_samples (list): The B samples (``text``, ``neg_texts``).
            images (Tensor, optional): ``[B, 3, H, W]`` RGB in [0, 1].
            offset (int): This rank's first text in ``sentence``.
            neg_sentence (list, optional): Per image, the embeddings
                ``[K_b, D]`` of its ``neg_texts`` (None: none).
            sam (FrozenSAM, optional): Needed when :attr:`needs_sam`.
            sam_embeddings (callable, optional): Returns the images' SAM
                embeddings ``[B, C, h', w']`` (called once, if needed).
        """
        batch = visual.shape[0]
        losses, own_maps = self.classification_losses(
            self(visual, sentence), offset)
        losses.update(self.calibration_losses(own_maps, images,
                                              data_samples))
        out = self.generate(visual, sentence[offset:offset + batch])
        own_share, other_share = self.shares(
            visual, out['response'],
            neg_sentence if self.needs_negative_texts else None)
        positive = slice(0, self.num_positive)
        if self.loss_spread is not None:
            losses.update(self.loss_spread(out['heat'][:, positive],
                                           out['points'][:, positive],
                                           own_share))
        masks = None
        if self.needs_sam:
            if sam is None or sam_embeddings is None:
                raise ValueError('PPTHead: the mask-level losses need the '
                                 'frozen SAM and its image embeddings.')
            masks = sam.predict_masks(sam_embeddings(), out['points'],
                                      out['labels'])['masks']
            # logged, not a loss: the share of the input the masks cover
            losses['mask_area'] = masks.detach().gt(0).float().mean()
        if self.loss_select is not None:
            losses.update(self.loss_select(
                out['heat'][:, positive], own_share, sam, sam_embeddings(),
                images, [s.metainfo[fields.TEXT] for s in data_samples],
                neg_texts_of(data_samples)))
        if self.loss_mask_cal is not None:
            if images is None:
                raise ValueError('The mask calibration needs the RGB images.')
            losses.update(self.loss_mask_cal(
                masks, images,
                [s.metainfo[fields.TEXT] for s in data_samples],
                neg_texts_of(data_samples)))
        if self.loss_neg is not None and self.num_negative > 0:
            size = out['heat'].shape[-2:]
            mask_prob = F.interpolate(masks.detach(), size=size,
                                      mode='bilinear',
                                      align_corners=False)[:, 0].sigmoid()
            leak = mask_prob * (1 - own_share)
            losses.update(self.loss_neg(out['heat'][:, self.num_positive:],
                                        own_share, other_share, leak))
        return losses
