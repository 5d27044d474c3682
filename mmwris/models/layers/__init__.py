from .bilateral_prompting import (BilateralPrompting, focal_penalty,
                                  image_text_scores, response_maps)
from .conditional_referring import ConditionalReferringStage, masked_softmax
from .pixel_word_attention import PixelWordAttention
from .tris_pixel_attention import TRISPixelAttention

__all__ = [
    'BilateralPrompting', 'ConditionalReferringStage', 'focal_penalty',
    'image_text_scores', 'masked_softmax', 'response_maps',
    'PixelWordAttention', 'TRISPixelAttention'
]
