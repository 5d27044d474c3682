from .inferencer import RISInferencer, read_image

__all__ = ['RISInferencer', 'read_image']
