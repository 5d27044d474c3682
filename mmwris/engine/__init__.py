from .hooks import RISVisualizationHook
from .model_wrappers import RISTestWrapper

__all__ = ['RISTestWrapper', 'RISVisualizationHook']
