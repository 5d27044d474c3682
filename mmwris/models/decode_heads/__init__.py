from .pcnet_head import PCNetHead
from .step2_head import TRISStep2Head
from .tris_head import TRISHead

__all__ = ['PCNetHead', 'TRISHead', 'TRISStep2Head']
