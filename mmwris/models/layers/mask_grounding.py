"""MagNet's Mask Grounding auxiliary task (training only; not released).

Some word tokens of the expression are masked (:func:`mask_tokens`); the
model encodes the masked expression with the image as usual, and this
branch predicts the masked tokens from the resulting word features, the
image features and the ground-truth mask::

    m   = MaskEncoder(GT mask at the visual grid)          [B, D, h, w]
    v   = Conv1x1(visual) + m                               [B, h*w, D]
    q   = Linear(words) (Lw -> D)                           [B, N, D]
    q   = TransformerDecoder(q, memory=v)  (words attend the masked pixels)
    y   = LMHead(Linear(q) (D -> Lw))  (BERT's transform, logits tied to
          the word embeddings)                              [B, N, V]
    L   = CE(y, original ids) on the masked positions

Shapes: B samples, N tokens of width Lw, D the branch width, V the
vocabulary.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS

IGNORE = -100


def mask_tokens(ids: Tensor, mask: Tensor, ratio: float, mask_id: int,
                special_ids=(101, 102), vocab_size: Optional[int] = None,
                replace=(0.8, 0.1), generator=None) -> Tuple[Tensor, Tensor]:
    """BERT's masked-language-model corruption of real word tokens.

    Each real token that is not special is chosen with probability
    ``ratio`` (at least one per expression that has one); a chosen token
    becomes ``mask_id`` with probability ``replace[0]``, a random id with
    ``replace[1]`` (needs ``vocab_size``) and stays otherwise.

    Returns:
        tuple[Tensor, Tensor]: The corrupted ids and the labels (the
        original id at chosen positions, -100 elsewhere).
    """
    candidates = mask.bool() & ~torch.isin(
        ids, torch.as_tensor(special_ids, device=ids.device))
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    chosen = candidates & (draw < ratio)
    # At least one token per expression with candidates: its lowest draw.
    none = candidates.any(1) & ~chosen.any(1)
    if none.any():
        first = draw.masked_fill(~candidates, 2.0).argmin(1)
        chosen[none, first[none]] = True
    labels = ids.masked_fill(~chosen, IGNORE)
    how = torch.rand(ids.shape, generator=generator, device=ids.device)
    corrupted = ids.masked_fill(chosen & (how < replace[0]), mask_id)
    if vocab_size and replace[1] > 0:
        rand = (how >= replace[0]) & (how < replace[0] + replace[1])
        random_ids = torch.randint(0, vocab_size, ids.shape,
                                   generator=generator, device=ids.device)
        corrupted = torch.where(chosen & rand, random_ids, corrupted)
    return corrupted, labels


@MODELS.register_module()
class MaskGroundingBranch(nn.Module):
    """Predict masked tokens from words, image features and the GT mask.

    Args:
        text_channels (int): ``Lw``.
        visual_channels (int): Channels of the visual feature used.
        vocab_size (int): ``V`` (the output bias).
        embed_dims (int): ``D``.
        num_layers (int): Transformer decoder layers (words -> pixels).
        num_heads (int): Their heads.
        ffn_dims (int): Their FFN width.
        loss_weight (float): Weight of the cross-entropy.
    """

    def __init__(self, text_channels: int, visual_channels: int,
                 vocab_size: int, embed_dims: int = 256, num_layers: int = 1,
                 num_heads: int = 8, ffn_dims: int = 1024,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.mask_encoder = nn.Sequential(
            nn.Conv2d(1, embed_dims // 4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(embed_dims // 4, embed_dims, 3, padding=1))
        self.visual_proj = nn.Conv2d(visual_channels, embed_dims, 1)
        self.text_proj = nn.Linear(text_channels, embed_dims)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(embed_dims, num_heads, ffn_dims,
                                       dropout=0.0, batch_first=True),
            num_layers)
        self.out_proj = nn.Linear(embed_dims, text_channels)
        # BERT's LM-head transform; the logits reuse the word embeddings.
        self.transform = nn.Sequential(
            nn.Linear(text_channels, text_channels), nn.GELU(),
            nn.LayerNorm(text_channels, eps=1e-12))
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, words: Tensor, visual: Tensor, gt_mask: Tensor,
                word_embeddings: Tensor) -> Tensor:
        """Vocabulary logits ``[B, N, V]``.

        Args:
            words (Tensor): ``[B, N, Lw]`` of the masked expression.
            visual (Tensor): ``[B, C, h, w]``.
            gt_mask (Tensor): ``[B, H, W]`` 0/1 (ignored pixels as 0).
            word_embeddings (Tensor): ``[V, Lw]`` (tied output weights).
        """
        grid = F.adaptive_avg_pool2d(gt_mask[:, None].to(visual.dtype),
                                     visual.shape[-2:])
        memory = self.visual_proj(visual) + self.mask_encoder(grid)
        query = self.decoder(self.text_proj(words),
                             memory.flatten(2).transpose(1, 2))
        hidden = self.transform(self.out_proj(query))
        return hidden @ word_embeddings.t() + self.bias

    def loss(self, words: Tensor, visual: Tensor, gt_mask: Tensor,
             word_embeddings: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """``loss_mg`` (cross-entropy on the masked positions) and
        ``acc_mg``."""
        logits = self.forward(words, visual, gt_mask, word_embeddings)
        flat = labels.flatten()
        valid = flat != IGNORE
        if not bool(valid.any()):
            zero = logits.sum() * 0
            return dict(loss_mg=zero, acc_mg=zero.detach())
        logits = logits.flatten(0, 1)
        loss = F.cross_entropy(logits[valid], flat[valid])
        with torch.no_grad():
            acc = (logits[valid].argmax(-1) == flat[valid]).float().mean()
        return dict(loss_mg=self.loss_weight * loss, acc_mg=acc)
