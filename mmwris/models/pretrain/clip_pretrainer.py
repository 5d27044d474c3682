"""Contrastive image-text pretraining of an open_clip CLIP."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from mmengine.model import BaseModel
from torch import Tensor

from mmwris.models.foundation.clip import (ArchType, build_open_clip,
                                           clip_token_ids)
from mmwris.registry import MODELS

PROMPT_TEMPLATES = ('a {}.', 'a photo of a {}.', 'a picture of a {}.',
                    'an image of a {}.')


@MODELS.register_module()
class CLIPPretrainer(BaseModel):
    """Trains ``self.clip`` (an open_clip ``CLIP`` from
    :func:`build_open_clip`) on image-caption pairs the CLIP way.

    Loss: open_clip's own ``ClipLoss``, the symmetric cross-entropy of the
    ``exp(logit_scale)``-scaled cosine similarities between the batch's
    images and captions. Across ranks the features are gathered
    (``gather_with_grad``) and, with ``local_loss``, each rank scores its
    own rows against all gathered columns (open_clip's multi-GPU setting).
    The temperature is CLIP's learnable ``logit_scale``, clamped at
    ``max_logit_scale`` as open_clip does.

    ``self.clip.state_dict()`` is a plain open_clip state dict
    (``tools/model_converters/export_clip.py`` writes it), which
    ``pretrained=`` of every CLIP tower loads strictly.

    Inputs: images ``[B, 3, H, W]`` (normalised by the data preprocessor at
    the CLIP input size), samples with the caption as ``text`` (and, for
    evaluation, the class index ``category_id``). Prediction sets
    ``image_embed [D]`` and ``text_embed [D]`` (unit) and, when
    ``zero_shot_classes`` are given, ``class_scores [K]`` (cosine
    similarities to the prompt-ensembled class embeddings).

    Args:
        arch (str | dict): See :func:`build_open_clip`.
        pretrained (str, optional): Local CLIP weights to start from.
        context_length (int, optional): Tokens per caption (SOT and EOT
            included, :func:`clip_token_ids`). Defaults to the CLIP's.
        local_loss (bool): ``ClipLoss(local_loss=...)``.
        gather_with_grad (bool): ``ClipLoss(gather_with_grad=...)``.
        max_logit_scale (float): Upper bound of ``exp(logit_scale)``.
        zero_shot_classes (Sequence[str]): Class names for the zero-shot
            scores of prediction (``'red circle'``).
        prompt_templates (Sequence[str]): Templates averaged per class.
    """

    def __init__(self,
                 arch: ArchType,
                 pretrained: Optional[str] = None,
                 context_length: Optional[int] = None,
                 local_loss: bool = True,
                 gather_with_grad: bool = True,
                 max_logit_scale: float = 100.0,
                 zero_shot_classes: Sequence[str] = (),
                 prompt_templates: Sequence[str] = PROMPT_TEMPLATES,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.clip = build_open_clip(arch, pretrained)
        if not hasattr(self.clip, 'token_embedding'):
            raise TypeError('CLIPPretrainer needs a CLIP with its own text '
                            'transformer (not a HuggingFace text tower).')
        self.context_length = context_length or self.clip.context_length
        if not 2 < self.context_length <= self.clip.context_length:
            raise ValueError(f'context_length must be in 3..'
                             f'{self.clip.context_length}, got '
                             f'{context_length}.')
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.max_logit_scale = max_logit_scale
        self.zero_shot_classes = tuple(zero_shot_classes)
        self.prompt_templates = tuple(prompt_templates)
        if self.zero_shot_classes and not self.prompt_templates:
            raise ValueError('zero_shot_classes need prompt_templates.')

    def logit_scale(self) -> Tensor:
        """``exp(logit_scale)``, at most ``max_logit_scale``."""
        return self.clip.logit_scale.exp().clamp(max=self.max_logit_scale)

    def encode_image(self, images: Tensor) -> Tensor:
        """``images [B, 3, H, W]`` -> unit ``[B, D]``."""
        return F.normalize(self.clip.encode_image(images), dim=-1)

    def encode_text(self, texts: List[str]) -> Tensor:
        """``T`` captions -> unit ``[T, D]``."""
        ids = clip_token_ids(texts, self.context_length)[0]
        ids = F.pad(ids, (0, self.clip.context_length - ids.shape[1]))
        ids = ids.to(self.clip.token_embedding.weight.device)
        return F.normalize(self.clip.encode_text(ids), dim=-1)

    def class_embeddings(self) -> Tensor:
        """Unit ``[K, D]``: per class, the mean embedding of its prompts."""
        prompts = [template.format(name) for name in self.zero_shot_classes
                   for template in self.prompt_templates]
        embeds = self.encode_text(prompts).view(
            len(self.zero_shot_classes), len(self.prompt_templates), -1)
        return F.normalize(embeds.mean(dim=1), dim=-1)

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.encode_image(inputs)
        raise RuntimeError(f'Invalid mode "{mode}": loss, predict or tensor.')

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        """``loss_clip`` (open_clip's ``ClipLoss``), plus the temperature
        and the in-batch image-to-caption accuracy for the log."""
        from open_clip.loss import ClipLoss

        rank, world_size = get_dist_info()
        criterion = ClipLoss(
            local_loss=self.local_loss,
            gather_with_grad=self.gather_with_grad,
            rank=rank,
            world_size=world_size)
        images = self.encode_image(inputs)
        texts = self.encode_text([sample.text for sample in data_samples])
        scale = self.logit_scale()
        with torch.no_grad():
            hits = (images @ texts.T).argmax(dim=1) == torch.arange(
                len(images), device=images.device)
        return dict(
            loss_clip=criterion(images, texts, scale),
            logit_scale=scale.detach(),
            acc_i2t=hits.float().mean() * 100)

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples) -> list:
        """Set ``image_embed``, ``text_embed`` and ``class_scores`` on the
        samples (see the class doc)."""
        images = self.encode_image(inputs)
        texts = self.encode_text([sample.text for sample in data_samples])
        scores = None
        if self.zero_shot_classes:
            scores = images @ self.class_embeddings().T
        for index, sample in enumerate(data_samples):
            fields = dict(image_embed=images[index], text_embed=texts[index])
            if scores is not None:
                fields['class_scores'] = scores[index]
            sample.set_data(fields)
        return data_samples
