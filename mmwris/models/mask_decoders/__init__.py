"""Registered response -> mask steps (``model.test_cfg.mask_decoder``)."""
from .base import BaseMaskDecoder
from .magnet import MagNetMaskDecoder
from .peak_proposal import PeakProposalMaskDecoder
from .threshold import ThresholdMaskDecoder
from .tris_official import TRISOfficialMaskDecoder

__all__ = [
    'MagNetMaskDecoder',
    'BaseMaskDecoder', 'PeakProposalMaskDecoder', 'ThresholdMaskDecoder',
    'TRISOfficialMaskDecoder'
]
