from .bilateral_prompting import (BilateralPrompting, focal_penalty,
                                  image_text_scores, response_maps)
from .conditional_referring import ConditionalReferringStage, masked_softmax
from .conditional_referring_released import ReleasedConditionalReferringStage
from .magnet_fusion import (MagNetImageFusion, MagNetPixelWordAttention,
                            MagNetTextFusion, MagNetWordPixelAttention)
from .mask_grounding import MaskGroundingBranch, mask_tokens
from .masked_attention_decoder import MaskedAttentionDecoder
from .ms_deform_attn import MSDeformAttn, multi_scale_deformable_attention
from .msdeform_pixel_decoder import (MSDeformAttnPixelDecoder,
                                     sine_position_embedding)
from .pixel_word_attention import PixelWordAttention
from .tris_pixel_attention import TRISPixelAttention

__all__ = [
    'MaskGroundingBranch', 'mask_tokens',
    'MagNetImageFusion', 'MagNetPixelWordAttention', 'MagNetTextFusion',
    'MagNetWordPixelAttention', 'MaskedAttentionDecoder',
    'MSDeformAttnPixelDecoder', 'sine_position_embedding',
    'BilateralPrompting', 'ConditionalReferringStage',
    'ReleasedConditionalReferringStage', 'focal_penalty',
    'image_text_scores', 'masked_softmax', 'MSDeformAttn',
    'multi_scale_deformable_attention', 'response_maps',
    'PixelWordAttention', 'TRISPixelAttention'
]
