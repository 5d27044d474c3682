"""Response -> mask: the last step of every referring segmentor.

A segmentor produces one raw response ``[1, h, w]`` per sample on its
network grid; :meth:`BaseMaskDecoder.decode_batch` resizes it to the sample's
original size (removing padding) and :meth:`BaseMaskDecoder.decode` turns it
into ``seg_logits`` and the binary ``pred_sem_seg``. Decoders are registered
in ``MODELS`` and chosen with ``model.test_cfg.mask_decoder=dict(type=...)``.
"""
from typing import List

import torch.nn.functional as F
from mmengine.structures import PixelData
from torch import Tensor


class BaseMaskDecoder:
    """Turn raw responses into masks at each sample's original size.

    Subclasses implement :meth:`decode` and may override
    :meth:`prepare` (applied on the network grid, before any resizing),
    :meth:`prepare_input` (applied on the padded network-input grid),
    ``align_corners`` (of the bilinear resizing) and
    ``input_align_corners`` (of the first resizing, to the network input;
    None: ``align_corners``).
    """
    align_corners = False
    input_align_corners = None

    def prepare(self, response: Tensor) -> Tensor:
        """The response ``[B, 1, h, w]`` before resizing (default: as is)."""
        return response

    def prepare_input(self, response: Tensor) -> Tensor:
        """The response ``[B, 1, H, W]`` at the padded network-input size,
        before the padding is cut off (default: as is)."""
        return response

    def decode(self, sample, response: Tensor) -> None:
        """Set ``seg_logits``/``pred_sem_seg`` (and any extra field) of
        ``sample`` from its original-size raw response ``[1, H, W]``."""
        raise NotImplementedError

    def to_original_size(self, response: Tensor,
                         data_samples: List) -> List[Tensor]:
        """``[B, 1, h, w]`` responses on the padded batch grid -> one
        ``[1, H_i, W_i]`` per sample at its ``ori_shape``."""
        response = self.prepare(response.float())
        batch_shape = data_samples[0].get('batch_input_shape',
                                          response.shape[-2:])
        input_align_corners = (self.align_corners
                               if self.input_align_corners is None else
                               self.input_align_corners)
        response = self.prepare_input(F.interpolate(
            response, size=batch_shape, mode='bilinear',
            align_corners=input_align_corners))
        outputs = []
        for i, sample in enumerate(data_samples):
            left, right, top, bottom = sample.get('padding_size', [0] * 4)
            height, width = response.shape[-2:]
            valid = response[i:i + 1, :, top:height - bottom,
                             left:width - right]
            img_h, img_w = sample.get('img_shape', valid.shape[-2:])[:2]
            valid = valid[..., :img_h, :img_w]
            outputs.append(F.interpolate(
                valid, size=sample.ori_shape[:2], mode='bilinear',
                align_corners=self.align_corners)[0])
        return outputs

    def decode_batch(self, response: Tensor, data_samples: List) -> List:
        """Resize every response to its sample and decode it."""
        for sample, ori in zip(data_samples,
                               self.to_original_size(response, data_samples)):
            self.decode(sample, ori)
        return data_samples

    @staticmethod
    def set_mask(sample, seg_logits: Tensor, mask: Tensor, **metainfo):
        """Store ``seg_logits [1, H, W]``, the mask and metainfo."""
        sample.set_data(dict(
            seg_logits=PixelData(data=seg_logits),
            pred_sem_seg=PixelData(data=mask.long())))
        if metainfo:
            sample.set_metainfo(metainfo)
