from .magnet_head import MagNetHead
from .pcnet_head import PCNetHead
from .pcnet_released_head import PCNetReleasedHead
from .ppt_head import PPTHead
from .step2_head import DeepSupervisionHead, TRISStep2Head
from .tris_head import TRISHead
from .tris_step2_released_head import TRISStep2ReleasedHead

__all__ = [
    'MagNetHead',
    'DeepSupervisionHead', 'PCNetHead', 'PCNetReleasedHead', 'PPTHead',
    'TRISHead',
    'TRISStep2Head', 'TRISStep2ReleasedHead'
]
