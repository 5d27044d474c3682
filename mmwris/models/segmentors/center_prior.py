import torch
from mmseg.utils import SampleList
from torch import Tensor

from mmwris.registry import MODELS
from .base_ris import BaseRISSegmentor


def centered_gaussian(height: int, width: int, sigma: float) -> Tensor:
    """A ``[height, width]`` Gaussian centred on the image, peak 1.

    ``sigma`` is relative to each side (``sigma * width`` horizontally).
    """
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height - 0.5
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width - 0.5
    return torch.exp(-(ys[:, None]**2 + xs[None, :]**2) / (2 * sigma**2))


@MODELS.register_module()
class CenterPriorSegmentor(BaseRISSegmentor):
    """The centre-prior baseline: ignore image and text, answer the centre.

    The classic pointing-game floor: its response is a centred Gaussian, so
    PointM/PointIt measure how often the referred object covers the image
    centre, and the thresholded mask is a centred ellipse. Every learned
    method must beat it. It has no parameters and needs no checkpoint.

    Args:
        sigma (float): Gaussian width relative to the image sides.
    """

    default_mask_decoder = dict(type='ThresholdMaskDecoder', norm=None,
                                threshold=0.5)

    def __init__(self, sigma: float = 0.25, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sigma = sigma

    def _forward(self, inputs: Tensor, data_samples: SampleList = None):
        height, width = inputs.shape[-2:]
        prior = centered_gaussian(height, width, self.sigma).to(inputs)
        return prior.expand(inputs.shape[0], 1, height, width)

    def predict(self, inputs: Tensor,
                data_samples: SampleList = None) -> SampleList:
        """The Gaussian is drawn directly at each original image size."""
        for sample in data_samples:
            height, width = sample.ori_shape[:2]
            prior = centered_gaussian(height, width, self.sigma)
            self.mask_decoder.decode(sample, prior[None].to(inputs.device))
        return data_samples

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        raise RuntimeError('CenterPriorSegmentor is an evaluation-only '
                           'baseline: it has nothing to train.')
