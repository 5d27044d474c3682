"""The staged-encoder interface: run an image encoder one stage at a time.

Early-fusion models (TRIS step 2, MagNet) change a stage's output (fuse the
words into it) before the next stage runs. Any backbone that implements
:class:`StagedEncoder` serves them: CLIP-ResNet and CLIP-ViT
(``CLIPVisionEncoder``) and Swin (``StagedSwinTransformer``)::

    state = encoder.forward_stem(images)
    for i in range(encoder.num_stages):
        state = encoder.forward_stage(i, state)
        feature = fuse(encoder.stage_feature(i, state))   # [B, C_i, h, w]
        state = encoder.replace_feature(i, state, feature)

``state`` is whatever the encoder carries between stages (a map, tokens
with a class token, tokens with their grid shape); only the encoder reads
it.
"""
from typing import Any, List, Sequence, Tuple

from torch import Tensor


class StagedEncoder:
    """Mixin of image encoders that can run stage by stage.

    Attributes:
        num_stages (int): Stages that :meth:`forward_stage` accepts.
        out_channels (list[int]): Channels of each stage's feature.
    """
    num_stages: int
    out_channels: List[int]

    def forward_stem(self, images: Tensor) -> Any:
        """``images [B, 3, H, W]`` -> the state before stage 0."""
        raise NotImplementedError

    def forward_stage(self, index: int, state: Any) -> Any:
        """Run stage ``index`` on ``state``; return the new state."""
        raise NotImplementedError

    def stage_feature(self, index: int, state: Any) -> Tensor:
        """The feature map ``[B, C_index, h, w]`` of stage ``index``."""
        raise NotImplementedError

    def replace_feature(self, index: int, state: Any, feature: Tensor) -> Any:
        """The state with its stage feature replaced by ``feature``."""
        raise NotImplementedError

    def forward_staged(self, images: Tensor,
                       indices: Sequence[int]) -> Tuple[Tensor, ...]:
        """The features of stages ``indices`` (no fusion)."""
        state = self.forward_stem(images)
        outs = []
        for index in range(max(indices) + 1):
            state = self.forward_stage(index, state)
            if index in indices:
                outs.append(self.stage_feature(index, state))
        return tuple(outs)


def check_staged(encoder, num_stages: int) -> None:
    """Raise a clear error unless ``encoder`` runs ``num_stages`` stages."""
    if not isinstance(encoder, StagedEncoder):
        raise TypeError(
            f'{type(encoder).__name__} does not implement the staged-encoder '
            'interface (mmwris.models.utils.StagedEncoder) needed for early '
            'fusion; use CLIPVisionEncoder or StagedSwinTransformer, or set '
            'early_fusion=False.')
    if encoder.num_stages < num_stages:
        raise ValueError(f'{type(encoder).__name__} runs {encoder.num_stages}'
                         f' stages; {num_stages} are fused.')
