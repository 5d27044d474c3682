from .bilateral_prompting import (BilateralPrompting, focal_penalty,
                                  image_text_scores, response_maps)
from .pixel_word_attention import PixelWordAttention

__all__ = [
    'BilateralPrompting', 'focal_penalty', 'image_text_scores',
    'response_maps', 'PixelWordAttention'
]
