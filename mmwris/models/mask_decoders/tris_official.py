from torch import Tensor

from mmwris.registry import MODELS
from .base import BaseMaskDecoder


@MODELS.register_module()
class TRISOfficialMaskDecoder(BaseMaskDecoder):
    """The mask of the released TRIS evaluation (fawnliu/TRIS,
    ``validate.py``), in its order:

    1. bilinear up-sampling of the raw response to the network input
       (``align_corners=False``, the end of the released forward),
    2. ``relu`` (step 1; the released step-2 network returns raw logits:
       ``relu=False``),
    3. the padding and ``img_shape`` are cut off, then bilinear up-sampling
       to the original image size with ``align_corners=True``,
    4. ``P = R / (max(R) + max_eps)`` over the image (fp32),
    5. ``mask = P > eps``: every pixel with a positive response is
       foreground (it is not a 0.5 threshold).

    ``seg_logits`` holds ``P``. A map without a positive pixel gives
    ``P = 0`` and an empty mask (step 1). With ``relu=False`` and only
    negative logits, the division by the negative maximum flips every sign,
    so the whole image becomes foreground: the released behaviour, kept.

    Args:
        relu (bool): Apply ``relu`` on the network-input grid (step 1).
            Defaults to True.
        max_eps (float): Added to the maximum before the division.
            Defaults to 1e-5.
        eps (float): Foreground threshold on ``P``. Defaults to 1e-9.
    """
    align_corners = True
    input_align_corners = False

    def __init__(self, relu: bool = True, max_eps: float = 1e-5,
                 eps: float = 1e-9) -> None:
        self.relu = bool(relu)
        self.max_eps = float(max_eps)
        self.eps = float(eps)

    def prepare_input(self, response: Tensor) -> Tensor:
        return response.relu() if self.relu else response

    def decode(self, sample, response: Tensor) -> None:
        peak = response.amax(dim=(-2, -1), keepdim=True)
        prob = response / (peak + self.max_eps)
        self.set_mask(sample, prob, prob > self.eps,
                      mask_threshold=self.eps,
                      response_norm='relu_max' if self.relu else 'max')
