from .calibration_loss import CalibrationLoss
from .classification_loss import ClassificationLoss
from .instance_disambiguation_loss import InstanceDisambiguationLoss
from .masked_bce_loss import MaskedBCELoss, masked_bce_with_logits
from .region_shrinking_loss import RegionShrinkingLoss

__all__ = [
    'CalibrationLoss', 'ClassificationLoss', 'InstanceDisambiguationLoss',
    'MaskedBCELoss', 'RegionShrinkingLoss', 'masked_bce_with_logits'
]
