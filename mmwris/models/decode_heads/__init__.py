from .tris_head import TRISHead

__all__ = ['TRISHead']
