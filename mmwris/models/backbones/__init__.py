from .magnet_swin import MagNetSwinTransformer
from .staged_swin import StagedSwinTransformer

__all__ = ['MagNetSwinTransformer', 'StagedSwinTransformer']
