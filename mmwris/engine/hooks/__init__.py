from .checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .visualization_hook import RISVisualizationHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'RISVisualizationHook'
]
