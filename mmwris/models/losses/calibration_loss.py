from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS

FG_IMAGES = ('rgb', 'network_input')
FG_RESIZES = ('scorer', 'released')


def _resize(x: Tensor, size, align_corners: bool) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(
        x, size=size, mode='bilinear', align_corners=align_corners)


def _clamp(x: Tensor, bounds: Optional[Sequence[float]]) -> Tensor:
    return x if bounds is None else x.clamp(*bounds)


@MODELS.register_module()
class CalibrationLoss(nn.Module):
    """TRIS calibration with a frozen CLIP on the foreground image.

    ``fg = sigmoid(up(R_ii)) * I``, then with unit CLIP embeddings
    ``f = E_img(fg)``, ``p`` of the own expression and ``n_k`` of the K
    expressions of other objects in the same image::

        loss_cal_pos = pos_weight * mean_b -log(clamp(<f, p>, *pos_clamp))
        loss_cal_neg = loss_weight * mean_b mean_k
                       -log(1 - clamp(<f, n_k>, *neg_clamp))

    Samples without negatives are left out of the second mean. Gradients
    flow through the frozen scorer into the response map.

    The released TRIS (``train_stage1.py``) differs in four named options:
    ``fg_image='network_input'`` (``I`` is the ImageNet-normalised network
    input, scored as is: give the scorer ``mean=(0, 0, 0), std=(1, 1, 1)``),
    ``fg_resize='released'``, ``pos_clamp=(1e-4, 0.9999)`` and an
    unclamped negative term (``neg_clamp=None``).

    Args:
        scorer (dict): Config of the frozen scorer (default type
            ``FrozenCLIPScorer``: ``arch``, ``pretrained``...).
        pos_weight (float): Weight of the foreground term (1 in TRIS).
        loss_weight (float): Weight of the calibration (negative-text)
            term (2 in TRIS).
        fg_image (str): Which image ``I`` the segmentor passes: ``'rgb'``
            (RGB in [0, 1]) or ``'network_input'`` (the preprocessed
            input).
        fg_resize (str): ``'scorer'``: the map is up-sampled to the image
            (bilinear), multiplied, and the scorer resizes the product to
            its input size. ``'released'``: ``sigmoid(up(R_ii))`` and ``I``
            are each resized to the scorer's size with
            ``align_corners=True`` before the product.
        pos_clamp (tuple, optional): ``(min, max)`` of the positive cosine.
        neg_clamp (tuple, optional): ``(min, max)`` of the negative
            cosines; None leaves them unclamped (released), which gives
            ``inf`` for a cosine of 1.
    """

    def __init__(self,
                 scorer: dict,
                 pos_weight: float = 1.0,
                 loss_weight: float = 2.0,
                 fg_image: str = 'rgb',
                 fg_resize: str = 'scorer',
                 pos_clamp: Optional[Sequence[float]] = (1e-4, 1.0),
                 neg_clamp: Optional[Sequence[float]] = (0.0, 1 - 1e-4)
                 ) -> None:
        super().__init__()
        if fg_image not in FG_IMAGES:
            raise ValueError(f'fg_image must be one of {FG_IMAGES}, not '
                             f'"{fg_image}".')
        if fg_resize not in FG_RESIZES:
            raise ValueError(f'fg_resize must be one of {FG_RESIZES}, not '
                             f'"{fg_resize}".')
        scorer = dict(scorer)
        scorer.setdefault('type', 'FrozenCLIPScorer')
        self.scorer = MODELS.build(scorer)
        self.pos_weight = pos_weight
        self.loss_weight = loss_weight
        self.fg_image = fg_image
        self.fg_resize = fg_resize
        self.pos_clamp = pos_clamp
        self.neg_clamp = neg_clamp

    def foreground(self, maps: Tensor, images: Tensor) -> Tensor:
        """``sigmoid(up(maps)) * images`` (see ``fg_resize``)."""
        maps = _resize(maps, images.shape[-2:], align_corners=False)
        if self.fg_resize == 'released':
            size = self.scorer.image_size
            return (_resize(maps.sigmoid(), size, align_corners=True) *
                    _resize(images, size, align_corners=True))
        return maps.sigmoid() * images

    def forward(self, maps: Tensor, images: Tensor, texts: List[str],
                neg_texts: Sequence[Sequence[str]]) -> Dict[str, Tensor]:
        """Compute both terms.

        Args:
            maps (Tensor): ``[B, 1, h, w]`` raw responses of each image to
                its own expression.
            images (Tensor): ``[B, 3, H, W]`` images (see ``fg_image``).
            texts (list[str]): The B own expressions.
            neg_texts (list[list[str]]): Each image's negative expressions.

        Returns:
            dict: ``loss_cal_pos`` and ``loss_cal_neg``.
        """
        image_emb = self.scorer.encode_image(self.foreground(maps, images))

        cos_pos = (image_emb * self.scorer.encode_text(texts)).sum(-1)
        loss_pos = -torch.log(_clamp(cos_pos, self.pos_clamp)).mean()

        owners = [i for i, negs in enumerate(neg_texts) for _ in negs]
        if owners:
            flat = [text for negs in neg_texts for text in negs]
            owners = torch.tensor(owners, device=image_emb.device)
            cos_neg = (image_emb[owners] *
                       self.scorer.encode_text(flat)).sum(-1)
            per_text = -torch.log(1 - _clamp(cos_neg, self.neg_clamp))
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
