from .calibration_loss import CalibrationLoss
from .classification_loss import ClassificationLoss
from .clip_scorer import FrozenCLIPScorer

__all__ = ['CalibrationLoss', 'ClassificationLoss', 'FrozenCLIPScorer']
