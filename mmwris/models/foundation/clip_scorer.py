from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from .clip import ArchType, build_open_clip, clip_token_ids

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@MODELS.register_module()
class FrozenCLIPScorer(nn.Module):
    """A frozen CLIP that embeds images in [0, 1] and expressions.

    The CLIP is held outside the module tree: it never trains, is never in
    train mode, has ``requires_grad=False`` everywhere, is not in the state
    dict (checkpoints stay small; it is rebuilt from ``pretrained``) and is
    invisible to optimizers and DDP, but follows ``.to()``/``.cuda()``.
    Gradients still flow through it into its *input* images.

    Args:
        arch (str | dict): See :func:`build_open_clip` (``'ViT-B-32'``).
        pretrained (str, optional): Local CLIP weights file.
        mean (Sequence[float]): The scorer's normalisation mean (RGB, [0, 1]).
        std (Sequence[float]): The scorer's normalisation std.
        image_size (int, optional): Input side; defaults to the CLIP's.
    """

    def __init__(self,
                 arch: ArchType,
                 pretrained: Optional[str] = None,
                 mean: Sequence[float] = OPENAI_MEAN,
                 std: Sequence[float] = OPENAI_STD,
                 image_size: Optional[int] = None) -> None:
        super().__init__()
        clip = build_open_clip(arch, pretrained)
        clip.eval()
        for param in clip.parameters():
            param.requires_grad = False
        self.__dict__['_clip'] = clip
        if image_size is None:
            image_size = clip.visual.image_size
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = tuple(image_size)
        self.register_buffer(
            'mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer(
            'std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def clip(self) -> nn.Module:
        return self._clip

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self._clip._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self._clip.eval()
        return self

    def encode_image(self, images: Tensor) -> Tensor:
        """``images [B, 3, H, W]`` (RGB in [0, 1]) -> unit ``[B, D]``."""
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(
                images, size=self.image_size, mode='bilinear',
                align_corners=False)
        images = (images - self.mean) / self.std
        return F.normalize(self._clip.encode_image(images), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: List[str]) -> Tensor:
        """``T`` expressions -> unit ``[T, D]`` (no gradient).

        Tokenised with :func:`clip_token_ids` (EOT always kept) at the
        scorer's context length.
        """
        ids, _ = clip_token_ids(list(texts), self._clip.context_length)
        return F.normalize(
            self._clip.encode_text(ids.to(self.mean.device)), dim=-1)
