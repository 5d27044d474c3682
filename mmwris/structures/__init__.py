from . import fields
from .ris_data_sample import RISDataSample, describe_sample

__all__ = ['RISDataSample', 'describe_sample', 'fields']
