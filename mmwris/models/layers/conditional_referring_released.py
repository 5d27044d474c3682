"""PCNet's Conditional Referring Module as the released code computes it.

Re-implemented from the description of zaiquanyang/Boosting_WRIS
(``model/model_prog_v5.py`` ``refer_core``, ``model/attn.py``) in the
official fixtures' README; the clean per-sample form is
:class:`ConditionalReferringStage`.

Shapes: B images, ``T`` texts of the forward (a multiple of B: text ``j``
belongs to image ``j mod B``; in training the B expressions then their B
IaD partners), C channels, ``h x w`` the feature grid.
"""
import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .bilateral_prompting import BilateralPrompting

CUE_ATTENTIONS = ('released', 'batch', 'own')


def unit(x: Tensor) -> Tensor:
    """``x / ||x||`` over the last axis, without an epsilon (released)."""
    return x / x.norm(dim=-1, keepdim=True)


def per_image(texts: Tensor, batch: int) -> Tensor:
    """``[T, C]`` texts (text ``j`` of image ``j mod B``) ->
    ``[B, T/B, C]``."""
    count, channels = texts.shape
    if count % batch:
        raise ValueError(f'{count} texts cannot be split over {batch} '
                         'images (text j belongs to image j mod B).')
    return texts.view(count // batch, batch, channels).transpose(0, 1)


def mixed_axis_keys(keys: Tensor, batch: int) -> Tensor:
    """The released text-to-text keys: ``keys [T, C]`` tiled ``batch``
    times to a contiguous ``[batch, T, C]`` and *reshaped* (not transposed)
    to ``[T, C, batch]``, which interleaves channels and texts."""
    count, channels = keys.shape
    tiled = keys.unsqueeze(0).expand(batch, count, channels).contiguous()
    return tiled.reshape(count, channels, batch)


class ReleasedConditionalReferringStage(nn.Module):
    """One stage of the released PCNet CRM: one TRIS bilateral-prompting
    block (the released ``attn_fusion_vl[k]``), used three times.

    With the visual state ``v [B, C, h, w]``, the referring texts
    ``main [T, C]`` and the stage's cues ``cue [T, C]`` (sentence
    embeddings of phrase ``k``, the last stage the sentence)::

        vn, mn, cn = unit(v), unit(main), unit(cue)      (renormalize)
        ctx_j  = O_t(softmax_hw(Q_t(cn_j) K_v(vn_img(j)) / sqrt C) V_v(vn))
        upd    = O_t(attend(Q_t(mn), K_t(ctx), V_t(ctx)))  (cue_attention)
        main'  = mn + gamma * upd
        v', lan = BilateralPrompting(vn, unit(main'))     (all T texts)

    ``lan [B, T, C]`` scores the response ``exp(tau) <v', lan>``; the next
    stage receives ``v'`` and ``main'`` (the modulated text before the
    bilateral update), both un-normalised.

    Args:
        channels (int): Common width C.
        alpha (float): Residual weight of the visual prompting update
            (released ``attn_multi_vis`` 0.1).
        beta (float): Residual weight of the text prompting update
            (``attn_multi_text`` 0.1).
        gamma (float): Residual weight of the cue modulation (the released
            code reuses ``attn_multi_text``, 0.1).
        cue_attention (str): Keys of the text-to-text attention:
            ``'released'``: the cue contexts of the whole forward with the
            released axis-mixing reshape (:func:`mixed_axis_keys`; B keys,
            a single one at batch 1); ``'batch'``: all T cue contexts,
            without the mixing; ``'own'``: the text's own cue only.
        renormalize (bool): L2-normalise the carried states at the start of
            the stage (released). Stage 0 receives unit vectors anyway.
    """

    def __init__(self,
                 channels: int,
                 alpha: float = 0.1,
                 beta: float = 0.1,
                 gamma: float = 0.1,
                 cue_attention: str = 'released',
                 renormalize: bool = True) -> None:
        super().__init__()
        if cue_attention not in CUE_ATTENTIONS:
            raise ValueError(f'cue_attention must be one of {CUE_ATTENTIONS}'
                             f', got {cue_attention!r}')
        self.channels = channels
        self.gamma = gamma
        self.cue_attention = cue_attention
        self.renormalize = renormalize
        self.prompting = BilateralPrompting(channels, alpha, beta)

    def cue_context(self, visual: Tensor, cue: Tensor) -> Tensor:
        """Each cue attends over its image's pixels, with the block's own
        projections (no residual, no norm): ``[T, C]``."""
        batch = visual.shape[0]
        # The text branch of the prompting block: Q_t(cue) over K_v / V_v.
        _, context = self.prompting.updates(visual, per_image(cue, batch))
        return context.transpose(0, 1).reshape(cue.shape)

    def modulate(self, main: Tensor, context: Tensor, batch: int) -> Tensor:
        """The text-to-text update ``O_t(...)`` of ``main [T, C]`` by the
        cue contexts ``[T, C]``."""
        prompting = self.prompting
        query = prompting.query_t(main)
        keys, values = prompting.key_t(context), prompting.value_t(context)
        scale = 1.0 / math.sqrt(self.channels)
        if self.cue_attention == 'own':
            return prompting.out_t(values)
        if self.cue_attention == 'batch':
            weights = torch.softmax(query @ keys.T * scale, dim=-1)
            return prompting.out_t(weights @ values)
        keys = mixed_axis_keys(keys, batch)
        values = mixed_axis_keys(values, batch).transpose(1, 2)
        weights = torch.softmax(
            torch.einsum('tc,tcr->tr', query, keys) * scale, dim=-1)
        return prompting.out_t(torch.einsum('tr,trc->tc', weights, values))

    def forward(self, visual: Tensor, main: Tensor,
                cue: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Run the stage.

        Args:
            visual (Tensor): ``[B, C, h, w]`` visual state.
            main (Tensor): ``[T, C]`` referring text state.
            cue (Tensor): ``[T, C]`` this stage's cue embeddings.

        Returns:
            tuple: the new visual state ``[B, C, h, w]``, the modulated
            referring text ``main' [T, C]`` and the scoring texts
            ``lan [B, T, C]``.
        """
        if self.renormalize:
            visual = F.normalize(visual, dim=1, eps=0.0)
            main = unit(main)
        context = self.cue_context(visual, unit(cue))
        main = main + self.gamma * self.modulate(main, context,
                                                 visual.shape[0])
        visual, lan = self.prompting(visual, unit(main))
        return visual, main, lan
