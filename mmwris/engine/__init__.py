from .hooks import (AtomicCheckpointHook, AtomicLocalBackend,
                    RISVisualizationHook)
from .model_wrappers import RISTestWrapper

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'RISTestWrapper',
    'RISVisualizationHook'
]
