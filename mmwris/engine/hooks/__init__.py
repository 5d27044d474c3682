from .visualization_hook import RISVisualizationHook

__all__ = ['RISVisualizationHook']
