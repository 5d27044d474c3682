from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS


@MODELS.register_module()
class CrossModalAlignmentLoss(nn.Module):
    """MagNet's cross-modal alignment loss (not released; our form).

    Pixel features ``f_p`` (projected, L2-normalised) of each sample, its
    sentence embedding ``t`` (projected, L2-normalised), ``y_p`` the GT
    (ignored pixels skipped)::

        pixel-to-text:  L_pt = BCE(<f_p, t> / tau_t, y_p)   over the pixels
        pixel-to-pixel: c = normalise(mean_{y_p = 1} f_p)
                        L_pp = -mean_{y_p = 1} log(
                                 exp(<f_p, c> / tau_p) /
                                 (exp(<f_p, c> / tau_p) +
                                  sum_{y_n = 0} exp(<f_p, f_n> / tau_p)))

    i.e. target pixels are pulled to the sentence and to their own
    prototype, non-target pixels pushed from both. Samples without target
    (or background) pixels contribute nothing to ``L_pp``. At most
    ``max_negatives`` non-target pixels (evenly spaced) enter ``L_pp``.

    Args:
        pixel_channels (int): Channels of the pixel features.
        text_channels (int): Width of the sentence embedding.
        embed_dims (int): Projection width.
        text_temperature (float): ``tau_t``.
        pixel_temperature (float): ``tau_p``.
        text_weight (float): Weight of ``L_pt`` (``loss_align_p2t``).
        pixel_weight (float): Weight of ``L_pp`` (``loss_align_p2p``).
        max_negatives (int): Non-target pixels per sample in ``L_pp``.
        ignore_index (int): Ignored GT label.
    """

    def __init__(self, pixel_channels: int, text_channels: int,
                 embed_dims: int = 256, text_temperature: float = 0.1,
                 pixel_temperature: float = 0.1, text_weight: float = 1.0,
                 pixel_weight: float = 1.0, max_negatives: int = 1024,
                 ignore_index: int = 255) -> None:
        super().__init__()
        self.pixel_proj = nn.Conv2d(pixel_channels, embed_dims, 1)
        self.text_proj = nn.Linear(text_channels, embed_dims)
        self.text_temperature = text_temperature
        self.pixel_temperature = pixel_temperature
        self.text_weight = text_weight
        self.pixel_weight = pixel_weight
        self.max_negatives = max_negatives
        self.ignore_index = ignore_index

    def forward(self, pixels: Tensor, sentence: Tensor,
                target: Tensor) -> Dict[str, Tensor]:
        """``pixels [B, C, h, w]``, ``sentence [B, Lw]``, ``target [B, H,
        W]`` (0/1/ignore, resized nearest to ``h x w``) -> the two losses."""
        feats = F.normalize(self.pixel_proj(pixels), dim=1).flatten(2)
        text = F.normalize(self.text_proj(sentence), dim=-1)
        target = F.interpolate(target[:, None].float(), pixels.shape[-2:],
                               mode='nearest')[:, 0].flatten(1)
        valid = target != self.ignore_index
        labels = (target == 1).float()
        logits = torch.einsum('bcp,bc->bp', feats, text) / \
            self.text_temperature
        p2t = F.binary_cross_entropy_with_logits(logits, labels,
                                                 reduction='none')
        p2t = (p2t * valid).sum() / valid.sum().clamp_min(1)
        p2p = []
        for feat, label, ok in zip(feats, labels, valid):
            pos, neg = (label == 1) & ok, (label == 0) & ok
            if not (pos.any() and neg.any()):
                continue
            positives = feat[:, pos]  # [C, P]
            negatives = feat[:, neg]
            step = max(1, negatives.shape[1] // self.max_negatives)
            negatives = negatives[:, ::step][:, :self.max_negatives]
            proto = F.normalize(positives.mean(1), dim=0)
            pos_logit = proto @ positives / self.pixel_temperature  # [P]
            neg_logit = positives.t() @ negatives / self.pixel_temperature
            all_logits = torch.cat([pos_logit[:, None], neg_logit], 1)
            p2p.append(-all_logits.log_softmax(1)[:, 0].mean())
        p2p = torch.stack(p2p).mean() if p2p else feats.sum() * 0
        return dict(loss_align_p2t=self.text_weight * p2t,
                    loss_align_p2p=self.pixel_weight * p2p)
