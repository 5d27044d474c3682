"""CLIP similarity between mask proposals and expressions."""
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def proposal_crops(image: Tensor, masks: Tensor, fill: Tensor,
                   size: Sequence[int]) -> Tensor:
    """The CLIP input of each proposal.

    A proposal's crop is the image with the pixels outside its mask set to
    ``fill``, cut to the mask's bounding box, padded (centred) to a square
    with ``fill`` so that the object keeps its aspect ratio, and resized
    (bilinear) to ``size``. With ``fill`` = the CLIP normalisation mean the
    outside pixels are zero after normalisation: the crop shows the object
    alone, without its surroundings. An empty mask gives a crop of ``fill``
    only.

    Args:
        image (Tensor): ``[3, H, W]`` RGB in [0, 1].
        masks (Tensor): ``[M, H, W]`` binary.
        fill (Tensor): ``[3]`` RGB in [0, 1].
        size (Sequence[int]): Output ``(h, w)``.

    Returns:
        Tensor: ``[M, 3, h, w]``.
    """
    fill = fill.view(3, 1, 1).to(image)
    crops = []
    for mask in masks.bool():
        rows = torch.nonzero(mask.any(1)).flatten()
        cols = torch.nonzero(mask.any(0)).flatten()
        if len(rows) == 0:
            crops.append(fill.expand(3, *size))
            continue
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
        x0, x1 = int(cols[0]), int(cols[-1]) + 1
        crop = torch.where(mask[y0:y1, x0:x1], image[:, y0:y1, x0:x1], fill)
        h, w = y1 - y0, x1 - x0
        side = max(h, w)
        square = fill.expand(3, side, side).clone()
        top, left = (side - h) // 2, (side - w) // 2
        square[:, top:top + h, left:left + w] = crop
        crops.append(F.interpolate(square[None], size=tuple(size),
                                   mode='bilinear', align_corners=False)[0])
    return torch.stack(crops) if crops else image.new_zeros((0, 3, *size))


class ProposalCLIPSimilarity:
    """Cosine similarity of each proposal crop with each expression.

    ``sim[m, t] = <f_img(crop_m), f_txt(text_t)>`` with unit CLIP
    embeddings, crops from :func:`proposal_crops` (fill = the scorer's
    normalisation mean), in batches of ``batch_size`` crops.

    Args:
        scorer (FrozenCLIPScorer): ``encode_image`` / ``encode_text``.
        batch_size (int): Crops per CLIP forward pass. Defaults to 32.
    """

    def __init__(self, scorer, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError('batch_size must be >= 1.')
        self.scorer = scorer
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return self.scorer.mean.device

    @torch.no_grad()
    def __call__(self, image: np.ndarray, masks: np.ndarray,
                 texts: Sequence[str]) -> np.ndarray:
        """``image [H, W, 3]`` RGB uint8, ``masks [M, H, W]``, T texts ->
        similarities ``[M, T]`` (float32)."""
        if not texts:
            raise ValueError('no expressions to compare the proposals with.')
        if len(masks) == 0:
            return np.zeros((0, len(texts)), np.float32)
        text_emb = self.scorer.encode_text(list(texts))
        image_t = torch.from_numpy(image).to(self.device).permute(
            2, 0, 1).float() / 255
        fill = self.scorer.mean.flatten()
        sims = []
        for start in range(0, len(masks), self.batch_size):
            batch = torch.from_numpy(
                np.asarray(masks[start:start + self.batch_size])).to(
                    self.device)
            crops = proposal_crops(image_t, batch, fill,
                                   self.scorer.image_size)
            sims.append(self.scorer.encode_image(crops) @ text_emb.t())
        return torch.cat(sims).float().cpu().numpy()

    def settings(self) -> dict:
        return dict(crop='mask box, outside = CLIP mean, square pad',
                    image_size=list(self.scorer.image_size))
