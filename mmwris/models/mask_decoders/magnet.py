from typing import List

import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS
from .threshold import ThresholdMaskDecoder

OUTPUTS = ('original', 'input')


@MODELS.register_module()
class MagNetMaskDecoder(ThresholdMaskDecoder):
    """MagNet's mask: ``sigmoid(logits) >= threshold`` (released: > 0.5).

    The stride-4 mask logits are resized bilinearly with
    ``align_corners=True`` to the network input (the released
    ``evaluate()``: 120x120 -> 480x480) and the padding is cut off.
    ``output='original'`` then resizes them (bilinear,
    ``align_corners=True``) to the original image; ``output='input'``
    keeps them at the resized input (``img_shape``), as the released
    evaluation does: use it with ``RISMetric(protocol='magnet')``, which
    compares at 480x480 with the GT resized there (nearest).

    Args:
        threshold (float): On the sigmoid of the logits.
        output (str): ``'original'`` or ``'input'``.
    """
    align_corners = True

    def __init__(self, threshold: float = 0.5,
                 output: str = 'original') -> None:
        super().__init__(norm='sigmoid', threshold=threshold)
        if output not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, got '
                             f'{output!r}')
        self.output = output

    def to_original_size(self, response: Tensor,
                         data_samples: List) -> List[Tensor]:
        if self.output == 'original':
            return super().to_original_size(response, data_samples)
        # Without test-time padding the preprocessor records no
        # batch_input_shape: the batch is then the images' img_shape.
        first = data_samples[0]
        batch_shape = first.get('batch_input_shape',
                                first.get('img_shape'))[:2]
        response = F.interpolate(response.float(), size=batch_shape,
                                 mode='bilinear', align_corners=True)
        outputs = []
        for i, sample in enumerate(data_samples):
            left, right, top, bottom = sample.get('padding_size', [0] * 4)
            height, width = response.shape[-2:]
            img_h, img_w = sample.get('img_shape', (height, width))[:2]
            outputs.append(response[i, :, top:height - bottom,
                                    left:width - right][:, :img_h, :img_w])
        return outputs
