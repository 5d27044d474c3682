"""PCNet's Conditional Referring Module (one stage).

Shapes: B images, T texts, ``Lc`` cue tokens, C channels, ``h x w`` the
feature grid.
"""
import math
from typing import Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .bilateral_prompting import BilateralPrompting


def masked_softmax(logits: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Softmax over ``dim`` where ``mask`` is True; all-False rows give 0."""
    logits = logits.masked_fill(~mask, float('-inf'))
    weights = torch.softmax(logits, dim=dim)
    return torch.nan_to_num(weights, nan=0.0)


class ConditionalReferringStage(nn.Module):
    """One CRM stage of PCNet: a textual cue conditions the referring text.

    For image ``b`` and text ``t`` with referring state ``L_bt [C]``, visual
    state ``V_b [hw, C]`` and cue tokens ``Q_t [Lc, C]`` (phrase ``k`` of
    text ``t``; the last stage uses the full sentence):

    1. the cue gathers visual context (cue tokens attend over the pixels)::

           U_bt = LN(Q_t + O_q(softmax(Wq Q_t (Wk V_b)^T / sqrt(C)) Wv V_b))

    2. the cue modulates the referring text (text-to-text attention of the
       sentence over *its own* cue tokens, padding masked, residual 0.1)::

           L'_bt = L_bt + gamma * O_l(softmax(Pq L_bt (Pk U_bt)^T / sqrt(C))
                                     Pv U_bt)

    3. TRIS bilateral prompting of ``(V_b, L'_b)`` gives this stage's visual
       and text states (and, through :func:`response_maps`, its response).

    The attention of step 2 is computed per (image, text) pair. The
    authors' released code computes it with the batch and token axes mixed
    (a sentence attends over other samples' cues); this is the clean
    per-sample form of the paper.

    Args:
        channels (int): Common width C.
        alpha (float): Residual weight of the visual prompting update.
        beta (float): Residual weight of the text prompting update.
        gamma (float): Residual weight of the cue modulation (0.1).
    """

    def __init__(self,
                 channels: int,
                 alpha: float = 0.1,
                 beta: float = 0.1,
                 gamma: float = 0.1) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = gamma
        self.cue_query = nn.Linear(channels, channels)
        self.pixel_key = nn.Conv2d(channels, channels, 1)
        self.pixel_value = nn.Conv2d(channels, channels, 1)
        self.cue_out = nn.Linear(channels, channels)
        self.cue_norm = nn.LayerNorm(channels)
        self.text_query = nn.Linear(channels, channels)
        self.cue_key = nn.Linear(channels, channels)
        self.cue_value = nn.Linear(channels, channels)
        self.text_out = nn.Linear(channels, channels)
        self.prompting = BilateralPrompting(channels, alpha, beta)

    def gather_visual_context(self, visual: Tensor, cue: Tensor) -> Tensor:
        """Step 1: ``visual [B, C, h, w]``, ``cue [B, T, Lc, C]`` ->
        ``[B, T, Lc, C]``."""
        scale = 1.0 / math.sqrt(self.channels)
        keys = self.pixel_key(visual).flatten(2)
        values = self.pixel_value(visual).flatten(2).transpose(1, 2)
        logits = torch.einsum('btlc,bcp->btlp', self.cue_query(cue), keys)
        context = torch.einsum('btlp,bpc->btlc',
                               torch.softmax(logits * scale, -1), values)
        return self.cue_norm(cue + self.cue_out(context))

    def modulate_text(self, text: Tensor, cue: Tensor,
                      cue_mask: Tensor) -> Tensor:
        """Step 2: ``text [B, T, C]``, ``cue [B, T, Lc, C]``,
        ``cue_mask [B, T, Lc]`` -> ``[B, T, C]``."""
        scale = 1.0 / math.sqrt(self.channels)
        logits = torch.einsum('btc,btlc->btl', self.text_query(text),
                              self.cue_key(cue)) * scale
        weights = masked_softmax(logits, cue_mask)
        update = torch.einsum('btl,btlc->btc', weights, self.cue_value(cue))
        return text + self.gamma * self.text_out(update)

    def forward(self, visual: Tensor, text: Tensor, cue: Tensor,
                cue_mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Run the stage.

        Args:
            visual (Tensor): ``[B, C, h, w]`` visual state.
            text (Tensor): ``[B, T, C]`` referring text state.
            cue (Tensor): ``[B, T, Lc, C]`` cue tokens of every text.
            cue_mask (Tensor): ``[B, T, Lc]`` valid cue tokens (bool).

        Returns:
            tuple: the new ``visual [B, C, h, w]`` and ``text [B, T, C]``.
        """
        cue = self.gather_visual_context(visual, cue)
        text = self.modulate_text(text, cue, cue_mask)
        return self.prompting(visual, text)
