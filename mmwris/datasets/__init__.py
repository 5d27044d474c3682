from .refcoco import RefCOCODataset, load_instances, load_refs
from .refcoco_m import RefCOCOMDataset  # noqa: F401
from .transforms import *  # noqa: F401,F403

__all__ = ['RefCOCODataset', 'load_instances', 'load_refs']
