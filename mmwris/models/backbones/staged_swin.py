from typing import Tuple

from mmseg.models.backbones import SwinTransformer
from torch import Tensor

from mmwris.registry import MODELS
from ..utils.staged_encoder import StagedEncoder

SwinState = Tuple[Tensor, Tuple[int, int]]


@MODELS.register_module()
class StagedSwinTransformer(StagedEncoder, SwinTransformer):
    """mmseg's Swin Transformer, runnable stage by stage.

    Stage ``i`` runs the patch merging of stage ``i - 1`` (if any) and then
    the blocks of stage ``i``, so its feature is the stage output *before*
    patch merging (where LAVT and MagNet fuse the words); an early-fusion
    model replaces it and the next stage merges the fused tokens.
    :meth:`stage_feature` applies the stage's output norm (``norm{i}``, for
    stages in ``out_indices``) and returns ``[B, C_i, H_i, W_i]``;
    :meth:`replace_feature` takes a map of that shape back as the tokens.
    The parameters and ``forward`` are mmseg's (same state-dict keys, so
    mmseg / mmpretrain Swin checkpoints load).

    Args:
        **kwargs: The arguments of ``mmseg.models.backbones.SwinTransformer``
            (``out_indices`` must list every stage for early fusion).
    """

    def train(self, mode: bool = True):
        """mmseg's ``train`` returns None; return the module, as torch's."""
        super().train(mode)
        return self

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def out_channels(self):
        return [self.num_features[i] for i in self.out_indices]

    def forward_stem(self, images: Tensor) -> SwinState:
        x, hw_shape = self.patch_embed(images)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        return self.drop_after_pos(x), hw_shape

    def forward_stage(self, index: int, state: SwinState) -> SwinState:
        x, hw_shape = state
        if index > 0 and self.stages[index - 1].downsample is not None:
            x, hw_shape = self.stages[index - 1].downsample(x, hw_shape)
        for block in self.stages[index].blocks:
            x = block(x, hw_shape)
        return x, hw_shape

    def stage_feature(self, index: int, state: SwinState) -> Tensor:
        x, (height, width) = state
        if index in self.out_indices:
            x = getattr(self, f'norm{index}')(x)
        return x.view(-1, height, width,
                      self.num_features[index]).permute(0, 3, 1,
                                                        2).contiguous()

    def replace_feature(self, index: int, state: SwinState,
                        feature: Tensor) -> SwinState:
        """The fused map becomes the tokens the next stage merges (the
        output norm is not undone: LAVT fuses after it, as here)."""
        return feature.flatten(2).transpose(1, 2), state[1]
