from typing import List, Optional, Sequence, Union

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
    """A frozen CLIP that embeds images and expressions.

    The CLIP is held outside the module tree: it never trains, is never in
    train mode, has ``requires_grad=False`` everywhere, is not in the state
    dict (checkpoints stay small; it is rebuilt from ``pretrained``) and is
    invisible to optimizers and DDP, but follows ``.to()``/``.cuda()``.
    Gradients still flow through it into its *input* images.

    Args:
        arch (str | dict): See :func:`build_open_clip` (``'ViT-B-32'``).
        pretrained (str, optional): Local CLIP weights file.
        mean (Sequence[float]): The scorer's normalisation mean (RGB, [0, 1]).
            The released TRIS feeds its (ImageNet-normalised) input as is:
            ``mean=(0, 0, 0), std=(1, 1, 1)``.
        std (Sequence[float]): The scorer's normalisation std.
        image_size (int, optional): Input side; defaults to the CLIP's.
        context_length (int, optional): Tokens per expression (SOT and EOT
            included; padded to the CLIP's context). Defaults to the CLIP's.
        keep_eot (bool): See :func:`clip_token_ids` (False: the released
            TRIS truncation).
        dtype (str, optional): Run the frozen CLIP in this dtype
            (``'bfloat16'``: half the memory and the bf16 tensor cores on a
            GPU; the images' gradient still flows through it). Its outputs
            are float32. None keeps float32.
    """

    def __init__(self,
                 arch: ArchType,
                 pretrained: Optional[str] = None,
                 mean: Sequence[float] = OPENAI_MEAN,
                 std: Sequence[float] = OPENAI_STD,
                 image_size: Optional[int] = None,
                 context_length: Optional[int] = None,
                 keep_eot: bool = True,
                 dtype: Optional[str] = None) -> None:
        super().__init__()
        clip = build_open_clip(arch, pretrained)
        self.dtype = getattr(torch, dtype) if dtype else torch.float32
        clip.to(self.dtype).eval()
        for param in clip.parameters():
            param.requires_grad = False
        self.__dict__['_clip'] = clip
        if image_size is None:
            image_size = clip.visual.image_size
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = tuple(image_size)
        self.context_length = context_length or clip.context_length
        if not 2 < self.context_length <= clip.context_length:
            raise ValueError(f'context_length must be in 3..'
                             f'{clip.context_length}, got {context_length}.')
        self.keep_eot = keep_eot
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
        """``images [B, 3, H, W]`` (RGB in [0, 1]) -> unit ``[B, D]``.

        Other sizes are resized (bilinear) to ``image_size``, then
        normalised with ``mean`` / ``std``."""
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(
                images, size=self.image_size, mode='bilinear',
                align_corners=False)
        images = (images - self.mean) / self.std
        features = self._clip.encode_image(images.to(self.dtype))
        return F.normalize(features.float(), dim=-1)

    def tokenize(self, texts: List[str]) -> Tensor:
        """``[T, context_length]`` ids (:func:`clip_token_ids`)."""
        return clip_token_ids(list(texts), self.context_length,
                              self.keep_eot)[0]

    @torch.no_grad()
    def encode_text(self, texts: Union[List[str], Tensor]) -> Tensor:
        """``T`` expressions (or their ids ``[T, L]``) -> unit ``[T, D]``
        (no gradient). CLIP pools at ``ids.argmax(-1)``; with its causal
        mask, the zero padding does not change the pooled feature."""
        ids = texts if isinstance(texts, Tensor) else self.tokenize(texts)
        ids = F.pad(ids.long(), (0, self._clip.context_length - ids.shape[1]))
        return F.normalize(
            self._clip.encode_text(ids.to(self.mean.device)).float(), dim=-1)
