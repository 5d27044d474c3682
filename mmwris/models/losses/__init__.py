from .calibration_loss import CalibrationLoss
from .classification_loss import ClassificationLoss
from .cross_modal_alignment_loss import CrossModalAlignmentLoss
from .instance_disambiguation_loss import InstanceDisambiguationLoss
from .instance_disambiguation_released_loss import \
    ReleasedInstanceDisambiguationLoss
from .mask_dice_loss import MaskDiceLoss, masked_dice_loss
from .masked_bce_loss import MaskedBCELoss, masked_bce_with_logits
from .ppt_losses import (PPTMaskCalibrationLoss, PPTNegativePointLoss,
                         PPTPointSelectionLoss, PPTSpreadLoss)
from .region_shrinking_loss import RegionShrinkingLoss
from .region_shrinking_released_loss import ReleasedRegionShrinkingLoss

__all__ = [
    'CrossModalAlignmentLoss',
    'MaskDiceLoss', 'masked_dice_loss',
    'CalibrationLoss', 'ClassificationLoss', 'InstanceDisambiguationLoss',
    'MaskedBCELoss', 'PPTMaskCalibrationLoss', 'PPTNegativePointLoss',
    'PPTPointSelectionLoss', 'PPTSpreadLoss', 'RegionShrinkingLoss',
    'ReleasedInstanceDisambiguationLoss', 'ReleasedRegionShrinkingLoss',
    'masked_bce_with_logits'
]
