from .generator import PseudoLabelGenerator, write_label_png
from .irn import IRNRefiner
from .prms import select_response_prms
from .refiners import (IGNORE_INDEX, AffinityRandomWalkRefiner,
                       DenseCRFRefiner, ThresholdRefiner, build_refiner)

__all__ = [
    'IGNORE_INDEX', 'ThresholdRefiner', 'DenseCRFRefiner',
    'AffinityRandomWalkRefiner', 'IRNRefiner', 'build_refiner', 'PseudoLabelGenerator',
    'select_response_prms', 'write_label_png'
]
