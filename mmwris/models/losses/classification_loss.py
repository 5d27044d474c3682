import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwris.registry import MODELS


@MODELS.register_module()
class ClassificationLoss(nn.Module):
    """TRIS classification loss: multi-label soft margin of image scores.

    ``L_cls = lambda * mean_b [-1/T sum_t (y log s(x) + (1 - y) log s(-x))]``
    with ``x [B, T]`` the logits of :func:`image_text_scores` and ``y`` the
    identity (each image's own text positive, every other text negative).

    Args:
        loss_weight (float): ``lambda`` (5 in TRIS).
        loss_name (str): Key of the loss in the loss dict.
    """

    def __init__(self,
                 loss_weight: float = 5.0,
                 loss_name: str = 'loss_cls') -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        """``scores [B, T]`` logits, ``target [B, T]`` in {0, 1}."""
        return self.loss_weight * F.multilabel_soft_margin_loss(
            scores, target.to(scores.dtype))
