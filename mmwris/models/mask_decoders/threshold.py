from typing import Optional

from torch import Tensor

from mmwris.registry import MODELS
from ..utils.proposal_ops import normalize_response
from .base import BaseMaskDecoder


@MODELS.register_module()
class ThresholdMaskDecoder(BaseMaskDecoder):
    """``mask = norm(R) >= threshold`` at the original size.

    ``R`` is bilinearly resized (``align_corners=False``) to the original
    image; ``norm`` is ``'minmax'`` (each map to [0, 1]), ``'sigmoid'`` or
    None (the response as is). ``seg_logits`` holds ``norm(R)``.

    Args:
        norm (str, optional): ``'minmax'`` | ``'sigmoid'`` | None.
        threshold (float): Mask threshold on the normalised response.
    """

    def __init__(self,
                 norm: Optional[str] = 'minmax',
                 threshold: float = 0.5) -> None:
        self.norm = norm
        self.threshold = float(threshold)

    def decode(self, sample, response: Tensor) -> None:
        if self.norm is not None:
            response = normalize_response(response, self.norm)
        self.set_mask(sample, response, response >= self.threshold,
                      mask_threshold=self.threshold,
                      response_norm=str(self.norm))
