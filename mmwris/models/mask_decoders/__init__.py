"""Registered response -> mask steps (``model.test_cfg.mask_decoder``)."""
from .base import BaseMaskDecoder
from .peak_proposal import PeakProposalMaskDecoder
from .threshold import ThresholdMaskDecoder
from .tris_official import TRISOfficialMaskDecoder

__all__ = [
    'BaseMaskDecoder', 'PeakProposalMaskDecoder', 'ThresholdMaskDecoder',
    'TRISOfficialMaskDecoder'
]
