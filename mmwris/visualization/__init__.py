from .overlay import draw_ris_overlay

__all__ = ['draw_ris_overlay']
