from typing import Optional

from torch import Tensor

from mmwris.registry import MODELS
from .masked_bce_loss import MaskedBCELoss


def masked_dice_loss(logits: Tensor, target: Tensor,
                     ignore_index: int = 255, smooth: float = 1.0) -> Tensor:
    """Mask2Former's dice loss on binary masks, ignored pixels skipped.

    Per sample, over its valid pixels ``V``, with ``p = sigmoid(x)``::

        l = 1 - (2 sum_V p y + smooth) / (sum_V p + sum_V y + smooth)

    averaged over the batch.

    Args:
        logits (Tensor): ``[B, H, W]``.
        target (Tensor): ``[B, H, W]`` with 0, 1 and ``ignore_index``.
    """
    if logits.shape != target.shape:
        raise ValueError(f'logits {tuple(logits.shape)} and target '
                         f'{tuple(target.shape)} must have the same shape.')
    valid = (target != ignore_index).to(logits.dtype).flatten(1)
    prob = logits.sigmoid().flatten(1) * valid
    labels = (target == 1).to(logits.dtype).flatten(1)
    inter = (prob * labels).sum(1)
    return (1 - (2 * inter + smooth) /
            (prob.sum(1) + labels.sum(1) + smooth)).mean()


@MODELS.register_module()
class MaskDiceLoss(MaskedBCELoss):
    """:func:`masked_dice_loss` as a registered loss (the weight, ignore
    label and loss name handling of :class:`MaskedBCELoss`).

    Args:
        loss_weight (float): Weight of the loss.
        smooth (float): Added to both sides of the ratio.
        ignore_index (int): Label of ignored pixels.
        loss_name (str): Key of the loss in the loss dict.
    """

    def __init__(self, loss_weight: float = 1.0, smooth: float = 1.0,
                 ignore_index: int = 255,
                 loss_name: str = 'loss_dice') -> None:
        super().__init__(loss_weight=loss_weight, ignore_index=ignore_index,
                         loss_name=loss_name)
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor,
                weight: Optional[float] = None) -> Tensor:
        weight = self.loss_weight if weight is None else weight
        return weight * masked_dice_loss(logits, target, self.ignore_index,
                                         self.smooth)
