from .base_ris import BaseRISSegmentor
from .center_prior import CenterPriorSegmentor, centered_gaussian
from .magnet import MagNetSegmentor
from .pcnet import PCNetSegmentor
from .ppt import PPTSegmentor
from .tris import TRISSegmentor
from .tris_step2 import TRISStep2Segmentor

__all__ = [
    'MagNetSegmentor',
    'BaseRISSegmentor', 'CenterPriorSegmentor', 'centered_gaussian',
    'PCNetSegmentor', 'PPTSegmentor', 'TRISSegmentor', 'TRISStep2Segmentor'
]
