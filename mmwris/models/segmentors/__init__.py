from .base_ris import BaseRISSegmentor
from .center_prior import CenterPriorSegmentor, centered_gaussian
from .magnet import MagNetSegmentor
from .pcnet import PCNetSegmentor
from .tris import TRISSegmentor
from .tris_step2 import TRISStep2Segmentor

__all__ = [
    'MagNetSegmentor',
    'BaseRISSegmentor', 'CenterPriorSegmentor', 'centered_gaussian',
    'PCNetSegmentor', 'TRISSegmentor', 'TRISStep2Segmentor'
]
