from .draws import SampleKey, draw_rng
from .refcoco import RefCOCODataset, load_instances, load_refs
from .samplers import KeyedDefaultSampler, KeyedInfiniteSampler
from .refcoco_m import RefCOCOMDataset  # noqa: F401
from .caption_dataset import CaptionDataset  # noqa: F401
from .transforms import *  # noqa: F401,F403
from .class_instance_dataset import (ClassInstanceDataset, CropToBox,
                                     ObjectCentricCaptionDataset)
from .curriculum import CurriculumDataset, CurriculumHook, CurriculumSampler

__all__ = [
    'ClassInstanceDataset', 'CropToBox', 'CurriculumDataset',
    'CurriculumHook', 'CurriculumSampler', 'ObjectCentricCaptionDataset',
    'KeyedDefaultSampler', 'KeyedInfiniteSampler', 'RefCOCODataset',
    'SampleKey', 'draw_rng', 'load_instances', 'load_refs']
