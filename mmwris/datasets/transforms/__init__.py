from .context import SampleIaDPartner, SampleNegativeTexts
from .formatting import PackRISInputs
from .loading import LoadRISAnnotations, decode_coco_segmentation
from .phrases import LoadPhrases
from .proposals import LoadProposals
from .sam_embedding import SAM_EMBEDDING, LoadSAMEmbedding
from .text_flip import RandomFlipWithText, swap_left_right

__all__ = [
    'LoadPhrases', 'LoadProposals', 'LoadRISAnnotations', 'LoadSAMEmbedding',
    'SAM_EMBEDDING', 'PackRISInputs',
    'RandomFlipWithText', 'SampleIaDPartner', 'SampleNegativeTexts',
    'decode_coco_segmentation', 'swap_left_right'
]
