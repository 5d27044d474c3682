from .bilateral_prompting import (BilateralPrompting, focal_penalty,
                                  image_text_scores, response_maps)

__all__ = [
    'BilateralPrompting', 'focal_penalty', 'image_text_scores',
    'response_maps'
]
