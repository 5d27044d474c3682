from .calibration_loss import CalibrationLoss
from .classification_loss import ClassificationLoss
from .instance_disambiguation_loss import InstanceDisambiguationLoss
from .proposal_ops import (masked_argmax, normalize_response,
                           proposal_alignment, select_peak_proposal,
                           soft_iou)
from .region_shrinking_loss import RegionShrinkingLoss

__all__ = [
    'CalibrationLoss', 'ClassificationLoss',
    'InstanceDisambiguationLoss', 'RegionShrinkingLoss', 'masked_argmax',
    'normalize_response', 'proposal_alignment', 'select_peak_proposal',
    'soft_iou'
]
