from .base_ris import BaseRISSegmentor, normalize_response
from .center_prior import CenterPriorSegmentor, centered_gaussian
from .tris import TRISSegmentor

__all__ = [
    'BaseRISSegmentor', 'CenterPriorSegmentor', 'centered_gaussian',
    'normalize_response', 'TRISSegmentor'
]
