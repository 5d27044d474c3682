from mmwris.registry import MODELS
from .threshold import ThresholdMaskDecoder


@MODELS.register_module()
class MagNetMaskDecoder(ThresholdMaskDecoder):
    """MagNet's mask: ``sigmoid(logits) >= threshold`` (released: > 0.5).

    The stride-4 mask logits are resized bilinearly with
    ``align_corners=True`` to the network input (the released
    ``evaluate()``: 120x120 -> 480x480), the padding is cut off and the
    result resized (bilinear, ``align_corners=True``) to the original
    image. With the released protocol the input is the 480x480 resized
    image and the metric (``RISMetric(protocol='magnet')``) compares the
    mask with the GT at 480x480.

    Args:
        threshold (float): On the sigmoid of the logits.
    """
    align_corners = True

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__(norm='sigmoid', threshold=threshold)
