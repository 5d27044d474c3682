from . import fields
from .ris_data_sample import RISDataSample

__all__ = ['RISDataSample', 'fields']
