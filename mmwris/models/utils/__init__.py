from .dist_gather import gather_with_grad
from .proposal_ops import (NORMALIZE_MODES, masked_argmax, normalize_response,
                           proposal_alignment, select_peak_proposal, soft_iou)
from .staged_encoder import StagedEncoder, check_staged

__all__ = [
    'NORMALIZE_MODES', 'gather_with_grad', 'masked_argmax',
    'normalize_response', 'proposal_alignment', 'select_peak_proposal',
    'soft_iou', 'StagedEncoder', 'check_staged'
]
