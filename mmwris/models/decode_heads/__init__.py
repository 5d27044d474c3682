from .step2_head import TRISStep2Head
from .tris_head import TRISHead

__all__ = ['TRISHead', 'TRISStep2Head']
