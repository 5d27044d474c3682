from .staged_swin import StagedSwinTransformer

__all__ = ['StagedSwinTransformer']
