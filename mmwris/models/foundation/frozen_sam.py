"""A frozen SAM that turns point prompts into masks, differentiably in the
point coordinates (PPT's mask step)."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from mmwris.structures import fields
from .sam import ArchType, build_sam, build_sam_model

# The per-sample field of a precomputed image embedding ``[C, h, w]``
# (written by the precompute tool, loaded by a transform).
SAM_EMBEDDING = getattr(fields, 'SAM_EMBEDDING', 'sam_embedding')
OUT_OF_BOUNDS = ('clamp', 'raise')


@MODELS.register_module()
class FrozenSAM(nn.Module):
    """A frozen Segment Anything model prompted with normalised points.

    Like :class:`FrozenCLIPScorer`, the SAM is held *outside* the module
    tree: it never trains, stays in eval mode, has ``requires_grad=False``
    everywhere, is not in the state dict (it is rebuilt from
    ``checkpoint``) and is invisible to optimizers and DDP, but follows
    ``.to()``/``.cuda()``. Gradients flow through its prompt encoder and
    mask decoder into the point *coordinates*.

    Frames. The SAM input is the whole padded network input, resized to
    SAM's ``image_size`` square (the configs use square network inputs, so
    the aspect ratio is kept). Points are ``(x, y)`` normalised to [0, 1]
    over that frame: ``u`` maps to SAM pixel ``u * S - 0.5``, which SAM's
    prompt encoder shifts by 0.5 and divides by ``S``, so ``u`` is exactly
    the normalised position SAM encodes. Masks come back as low-resolution
    logits over the same frame (``4 x`` the embedding grid).

    Args:
        arch (str | dict): A SAM architecture (:data:`SAM_ARCHS`).
        checkpoint (str, optional): Local SAM weights, loaded strictly by
            :func:`build_sam` (a mismatch names the file and the keys).
        random_init (bool): Allow ``checkpoint=None`` and keep random
            weights (smoke tests of the full-size configs only). Without
            it a missing checkpoint is an error.
        out_of_bounds (str): Points outside [0, 1]: ``'clamp'`` (default)
            clamps them to the border (the gradient of a clamped coordinate
            is zero), ``'raise'`` raises a ``ValueError``.
        require_embeddings (bool): Raise if a sample carries no
            precomputed ``sam_embedding`` instead of running the image
            encoder (for runs that must not pay for ViT-H).
    """

    def __init__(self,
                 arch: ArchType = 'vit_h',
                 checkpoint: Optional[str] = None,
                 random_init: bool = False,
                 out_of_bounds: str = 'clamp',
                 require_embeddings: bool = False) -> None:
        super().__init__()
        if out_of_bounds not in OUT_OF_BOUNDS:
            raise ValueError(f'out_of_bounds must be one of {OUT_OF_BOUNDS}, '
                             f'not "{out_of_bounds}".')
        if checkpoint:
            sam = build_sam(arch, checkpoint)
        elif random_init:
            sam = build_sam_model(arch)
        else:
            raise ValueError(
                'FrozenSAM needs a local SAM checkpoint (e.g. --cfg-options '
                'sam_checkpoint=checkpoints/sam_vit_h_4b8939.pth); '
                'random_init=True keeps random weights (tests only).')
        sam.eval()
        for param in sam.parameters():
            param.requires_grad = False
        self.__dict__['_sam'] = sam
        self.arch = arch
        self.image_size = int(sam.image_encoder.img_size)
        self.embed_dim = int(sam.prompt_encoder.embed_dim)
        self.embedding_size = tuple(sam.prompt_encoder.image_embedding_size)
        self.out_of_bounds = out_of_bounds
        self.require_embeddings = require_embeddings

    @property
    def sam(self) -> nn.Module:
        return self._sam

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self._sam._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self._sam.eval()
        return self

    # Image embeddings ----------------------------------------------------
    def preprocess(self, images: Tensor) -> Tensor:
        """RGB in [0, 1] ``[B, 3, H, W]`` -> SAM's normalised input
        ``[B, 3, S, S]``."""
        size = (self.image_size, self.image_size)
        if tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode='bilinear',
                                   align_corners=False)
        sam = self._sam
        return (images * 255.0 - sam.pixel_mean) / sam.pixel_std

    @torch.no_grad()
    def encode_images(self, images: Tensor) -> Tensor:
        """``[B, C, h, w]`` image embeddings (no gradient)."""
        return self._sam.image_encoder(self.preprocess(images))

    def check_embedding(self, embedding: Tensor, index: int) -> Tensor:
        expected = (self.embed_dim, ) + self.embedding_size
        if tuple(embedding.shape) != expected:
            raise ValueError(
                f'Sample {index}: the precomputed {SAM_EMBEDDING} has shape '
                f'{tuple(embedding.shape)}, but SAM "{self.arch}" needs '
                f'{expected} (was it computed with another SAM?).')
        return embedding

    def embeddings(self, images: Tensor,
                   data_samples: Optional[Sequence] = None) -> Tensor:
        """Each image's embedding ``[B, C, h, w]`` (float32, no gradient):
        a sample's precomputed ``sam_embedding`` (any float dtype) when it
        has one, otherwise the image encoder once on the images that lack
        it."""
        batch = images.shape[0]
        stored: List[Optional[Tensor]] = [None] * batch
        for i, sample in enumerate(data_samples or []):
            value = sample.get(SAM_EMBEDDING, None) if hasattr(
                sample, 'get') else None
            if value is not None:
                value = torch.as_tensor(value)
                stored[i] = self.check_embedding(value, i).to(
                    device=images.device, dtype=torch.float32)
        missing = [i for i, value in enumerate(stored) if value is None]
        if missing and self.require_embeddings:
            raise ValueError(
                f'Samples {missing} carry no precomputed {SAM_EMBEDDING} '
                '(require_embeddings=True): run '
                'tools/precompute_sam_embeddings.py and load them with the '
                'LoadSAMEmbedding transform.')
        if missing:
            computed = self.encode_images(images[missing]).float()
            for j, i in enumerate(missing):
                stored[i] = computed[j]
        return torch.stack(stored)

    # Prompts -> masks ----------------------------------------------------
    def check_points(self, points: Tensor) -> Tensor:
        if not torch.isfinite(points).all():
            raise ValueError('Point prompts must be finite.')
        outside = (points < 0) | (points > 1)
        if outside.any():
            if self.out_of_bounds == 'raise':
                bad = points[outside.any(-1)][:4].tolist()
                raise ValueError(
                    'Point prompts must be normalised (x, y) in [0, 1] of '
                    f'the network input; got e.g. {bad}.')
            points = points.clamp(0, 1)
        return points

    def predict_masks(self,
                      embeddings: Tensor,
                      points: Tensor,
                      labels: Tensor,
                      multimask: bool = True) -> Dict[str, Tensor]:
        """Masks of point prompts, differentiable in ``points``.

        Args:
            embeddings (Tensor): ``[B, C, h, w]`` from :meth:`embeddings`.
            points (Tensor): ``[B, K, 2]`` normalised ``(x, y)``.
            labels (Tensor): ``[B, K]``: 1 positive, 0 negative, -1 ignored.
            multimask (bool): SAM's three masks, the one with the highest
                predicted IoU kept (else SAM's single-mask output).

        Returns:
            dict: ``masks [B, 1, 4h, 4w]`` logits of the chosen mask,
            ``iou [B]`` its predicted IoU, ``all_masks [B, M, 4h, 4w]``,
            ``all_iou [B, M]``.
        """
        if points.dim() != 3 or points.shape[-1] != 2:
            raise ValueError('points must be [B, K, 2], got '
                             f'{tuple(points.shape)}.')
        if labels.shape != points.shape[:2]:
            raise ValueError(f'labels {tuple(labels.shape)} do not match '
                             f'points {tuple(points.shape)}.')
        points = self.check_points(points)
        sam = self._sam
        coords = points.float() * self.image_size - 0.5
        image_pe = sam.prompt_encoder.get_dense_pe()
        all_masks, all_iou = [], []
        for b in range(points.shape[0]):
            sparse, dense = sam.prompt_encoder(
                points=(coords[b:b + 1], labels[b:b + 1].float()),
                boxes=None, masks=None)
            masks, iou = sam.mask_decoder(
                image_embeddings=embeddings[b:b + 1].float(),
                image_pe=image_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask)
            all_masks.append(masks)
            all_iou.append(iou)
        all_masks = torch.cat(all_masks)
        all_iou = torch.cat(all_iou)
        best = all_iou.argmax(1)
        rows = torch.arange(best.shape[0], device=best.device)
        return dict(masks=all_masks[rows, best][:, None],
                    iou=all_iou[rows, best],
                    all_masks=all_masks,
                    all_iou=all_iou)
