"""Registered response -> mask steps (``model.test_cfg.mask_decoder``)."""
from .base import BaseMaskDecoder
from .magnet import MagNetMaskDecoder
from .peak_proposal import PeakProposalMaskDecoder
from .point_prompt_sam import (PointPromptSAMDecoder, ResponsePeakSAMDecoder,
                               SAMPromptMaskDecoder)
from .threshold import ThresholdMaskDecoder
from .tris_official import TRISOfficialMaskDecoder

__all__ = [
    'MagNetMaskDecoder',
    'BaseMaskDecoder', 'PeakProposalMaskDecoder', 'PointPromptSAMDecoder',
    'ResponsePeakSAMDecoder', 'SAMPromptMaskDecoder', 'ThresholdMaskDecoder',
    'TRISOfficialMaskDecoder'
]
