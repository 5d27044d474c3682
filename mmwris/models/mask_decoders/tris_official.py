import torch
from torch import Tensor

from mmwris.registry import MODELS
from .base import BaseMaskDecoder


@MODELS.register_module()
class TRISOfficialMaskDecoder(BaseMaskDecoder):
    """The mask of the released TRIS evaluation.

    ``R+ = relu(R)`` on the network grid, bilinear up-sampling with
    ``align_corners=True``, ``P = R+ / max(R+)`` and ``mask = P > eps``: every
    pixel with a positive response is foreground. ``seg_logits`` holds
    ``P`` (0 everywhere for a map without a positive pixel).

    Args:
        eps (float): Foreground threshold on ``P`` (``1e-9``).
    """
    align_corners = True

    def __init__(self, eps: float = 1e-9) -> None:
        self.eps = float(eps)

    def prepare(self, response: Tensor) -> Tensor:
        return response.relu()

    def decode(self, sample, response: Tensor) -> None:
        peak = response.amax(dim=(-2, -1), keepdim=True)
        prob = torch.where(peak > 0, response / peak.clamp_min(1e-30),
                           torch.zeros_like(response))
        self.set_mask(sample, prob, prob > self.eps,
                      mask_threshold=self.eps, response_norm='relu_max')
