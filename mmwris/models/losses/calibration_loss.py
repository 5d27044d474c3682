from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS


@MODELS.register_module()
class CalibrationLoss(nn.Module):
    """TRIS calibration with a frozen CLIP on the foreground image.

    ``fg = sigmoid(up(R_ii)) * I`` (``I`` the RGB input in [0, 1]), then
    with unit CLIP embeddings ``f = E_img(fg)``, ``p`` of the own expression
    and ``n_k`` of the K expressions of other objects in the same image::

        loss_cal_pos = pos_weight * mean_b -log(clamp(<f, p>, eps, 1))
        loss_cal_neg = loss_weight * mean_b mean_k
                       -log(1 - clamp(<f, n_k>, 0, 1 - eps))

    Samples without negatives are left out of the second mean. Gradients
    flow through the frozen scorer into the response map.

    Args:
        scorer (dict): Config of the frozen scorer (default type
            ``FrozenCLIPScorer``: ``arch``, ``pretrained``...).
        pos_weight (float): Weight of the foreground term (1 in TRIS).
        loss_weight (float): Weight of the calibration (negative-text)
            term (2 in TRIS).
        eps (float): Clamp margin of the cosines.
    """

    def __init__(self,
                 scorer: dict,
                 pos_weight: float = 1.0,
                 loss_weight: float = 2.0,
                 eps: float = 1e-4) -> None:
        super().__init__()
        scorer = dict(scorer)
        scorer.setdefault('type', 'FrozenCLIPScorer')
        self.scorer = MODELS.build(scorer)
        self.pos_weight = pos_weight
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self, maps: Tensor, images: Tensor, texts: List[str],
                neg_texts: Sequence[Sequence[str]]) -> Dict[str, Tensor]:
        """Compute both terms.

        Args:
            maps (Tensor): ``[B, 1, h, w]`` raw responses of each image to
                its own expression.
            images (Tensor): ``[B, 3, H, W]`` RGB images in [0, 1].
            texts (list[str]): The B own expressions.
            neg_texts (list[list[str]]): Each image's negative expressions.

        Returns:
            dict: ``loss_cal_pos`` and ``loss_cal_neg``.
        """
        maps = F.interpolate(
            maps, size=images.shape[-2:], mode='bilinear',
            align_corners=False)
        foreground = maps.sigmoid() * images
        image_emb = self.scorer.encode_image(foreground)

        cos_pos = (image_emb * self.scorer.encode_text(texts)).sum(-1)
        loss_pos = -torch.log(cos_pos.clamp(self.eps, 1.0)).mean()

        owners = [i for i, negs in enumerate(neg_texts) for _ in negs]
        if owners:
            flat = [text for negs in neg_texts for text in negs]
            owners = torch.tensor(owners, device=image_emb.device)
            cos_neg = (image_emb[owners] *
                       self.scorer.encode_text(flat)).sum(-1)
            per_text = -torch.log(1 - cos_neg.clamp(0.0, 1.0 - self.eps))
            counts = torch.bincount(owners, minlength=len(texts))
            sums = image_emb.new_zeros(len(texts)).index_add(
                0, owners, per_text)
            has_neg = counts > 0
            loss_neg = (sums[has_neg] / counts[has_neg]).mean()
        else:
            loss_neg = image_emb.sum() * 0
        return dict(
            loss_cal_pos=self.pos_weight * loss_pos,
            loss_cal_neg=self.loss_weight * loss_neg)
