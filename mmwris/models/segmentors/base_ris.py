from typing import List, Optional

import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.utils import OptConfigType, SampleList
from torch import Tensor

from ..losses.proposal_ops import normalize_response


class BaseRISSegmentor(BaseSegmentor):
    """Base class of referring segmentors: one response map per (image, text).

    Subclasses produce raw response maps ``[B, 1, h, w]`` aligned with the
    (padded) network input; :meth:`postprocess_response` removes padding,
    resizes them to each image's original size, normalises them
    (``test_cfg.response_norm``) and thresholds them
    (``test_cfg.mask_threshold``) into the binary ``pred_sem_seg``.

    Args:
        test_cfg (dict): ``mask_threshold`` (float, default 0.5) and
            ``response_norm`` (``'minmax'`` | ``'sigmoid'`` | None, default
            ``'minmax'``).
    """

    def __init__(self,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 train_cfg: OptConfigType = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        self.mask_threshold = float(self.test_cfg.get('mask_threshold', 0.5))
        self.response_norm = self.test_cfg.get('response_norm', 'minmax')
        self.align_corners = False

    @staticmethod
    def texts_of(data_samples: SampleList) -> List[str]:
        """The expression of every sample, in batch order."""
        return [sample.text for sample in data_samples]

    def postprocess_response(self, response: Tensor,
                             data_samples: SampleList) -> SampleList:
        """Fill ``seg_logits`` and ``pred_sem_seg`` at the original size.

        Args:
            response (Tensor): ``[B, 1, H, W]`` raw responses aligned with
                the padded input batch (any H, W: they are rescaled).
            data_samples (list[SegDataSample]): Samples with ``img_shape``,
                ``ori_shape`` and optionally ``padding_size``/``pad_shape``.
        """
        batch_shape = data_samples[0].get('batch_input_shape',
                                          response.shape[-2:])
        response = F.interpolate(
            response.float(), size=batch_shape, mode='bilinear',
            align_corners=False)
        for i, sample in enumerate(data_samples):
            left, right, top, bottom = sample.get('padding_size', [0] * 4)
            height, width = response.shape[-2:]
            valid = response[i:i + 1, :, top:height - bottom,
                             left:width - right]
            img_h, img_w = sample.get('img_shape', valid.shape[-2:])[:2]
            valid = valid[..., :img_h, :img_w]
            ori = F.interpolate(
                valid, size=sample.ori_shape[:2], mode='bilinear',
                align_corners=False)[0]
            self.set_prediction(sample, ori)
        return data_samples

    def set_prediction(self, sample, response: Tensor) -> None:
        """Store a ``[1, H, W]`` original-size response and its mask."""
        if self.response_norm is not None:
            response = normalize_response(response, self.response_norm)
        sample.set_data(dict(
            seg_logits=PixelData(data=response),
            pred_sem_seg=PixelData(
                data=(response >= self.mask_threshold).long())))
        sample.set_metainfo(dict(
            mask_threshold=self.mask_threshold,
            response_norm=str(self.response_norm)))

    def predict_response(self, inputs: Tensor,
                         data_samples: SampleList) -> Tensor:
        """Raw ``[B, 1, h, w]`` response of each image to its expression."""
        raise NotImplementedError

    def predict(self, inputs: Tensor,
                data_samples: SampleList = None) -> SampleList:
        """Fill ``seg_logits`` / ``pred_sem_seg`` at each original size."""
        return self.postprocess_response(
            self.predict_response(inputs, data_samples), data_samples)

    def encode_decode(self, inputs: Tensor,
                      batch_data_samples: SampleList) -> Tensor:
        """The response resized to the input, ``[B, 1, H, W]``."""
        return F.interpolate(
            self.predict_response(inputs, batch_data_samples),
            size=inputs.shape[-2:], mode='bilinear', align_corners=False)

    def extract_feat(self, inputs: Tensor):
        raise NotImplementedError

    def _forward(self, inputs: Tensor, data_samples: SampleList = None):
        raise NotImplementedError
