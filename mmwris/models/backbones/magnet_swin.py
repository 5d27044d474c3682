import torch
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from .staged_swin import StagedSwinTransformer, SwinState


@MODELS.register_module()
class MagNetSwinTransformer(StagedSwinTransformer):
    """mmseg's Swin for LAVT-style early fusion (MagNet): no output norms.

    LAVT / MagNet fuse the words into every stage's *raw* block output and
    send the fused map on (the released checkpoints store ``norm0..3`` but
    never apply them). This :class:`StagedSwinTransformer` builds no output
    norms, returns the unnormalised stage feature of every stage and
    accepts the fused map back through :meth:`replace_feature`. Swin blocks
    and keys are mmseg's (``patch_embed.projection``, ``stages.i.blocks``,
    ``stages.i.downsample``), so ImageNet Swin weights converted with
    mmseg's ``swin2mmseg`` load. Patch merging runs with those parameters
    in the original Swin order (concatenation of the (0, 0), (1, 0),
    (0, 1), (1, 1) neighbours, the weights permuted back from mmseg's
    unfold order): the same function as mmseg's, summed in the order of
    the released code (its numbers bit for bit).

    Args:
        **kwargs: ``mmseg.models.backbones.SwinTransformer`` arguments
            (``out_indices`` is fixed to every stage).
    """

    def __init__(self, **kwargs) -> None:
        depths = kwargs.get('depths', (2, 2, 6, 2))
        kwargs['out_indices'] = tuple(range(len(depths)))
        super().__init__(**kwargs)
        for index in self.out_indices:
            delattr(self, f'norm{index}')

    @property
    def out_channels(self):
        return list(self.num_features)

    def forward_stage(self, index: int, state: SwinState) -> SwinState:
        x, hw_shape = state
        if index > 0:
            x, hw_shape = self.merge_patches(self.stages[index - 1].downsample,
                                             x, hw_shape)
        for block in self.stages[index].blocks:
            x = block(x, hw_shape)
        return x, hw_shape

    @staticmethod
    def merge_patches(merging, x: Tensor, hw_shape):
        """mmseg's ``PatchMerging`` (2x2) in the original Swin order."""
        batch, _, channels = x.shape
        height, width = hw_shape
        x = x.view(batch, height, width, channels)
        if height % 2 or width % 2:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2],
                       x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        out_h, out_w = x.shape[1:3]
        x = x.view(batch, -1, 4 * channels)
        # Channel (q, c) of the concatenation is unfold channel 4c + k(q).
        kernel = torch.tensor([0, 2, 1, 3], device=x.device)
        order = (torch.arange(channels, device=x.device)[None] * 4 +
                 kernel[:, None]).reshape(-1)
        norm = merging.norm
        x = F.layer_norm(x, (4 * channels, ), norm.weight[order],
                         norm.bias[order], norm.eps)
        return F.linear(x, merging.reduction.weight[:, order]), (out_h,
                                                                 out_w)

    def stage_feature(self, index: int, state: SwinState) -> Tensor:
        x, (height, width) = state
        return x.view(-1, height, width,
                      self.num_features[index]).permute(0, 3, 1,
                                                        2).contiguous()

    def forward(self, images: Tensor):
        """The four unfused stage features (no early fusion)."""
        return self.forward_staged(images, self.out_indices)
