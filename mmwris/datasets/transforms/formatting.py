import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs

from mmwris.registry import TRANSFORMS

RIS_META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'pad_shape',
                 'scale_factor', 'flip', 'flip_direction', 'text',
                 'neg_texts', 'sent_id', 'ref_id', 'ann_id', 'image_id',
                 'category_id', 'split', 'gt_bbox', 'phrases',
                 'partner_text', 'partner_phrases', 'partner_sent_id',
                 'partner_ref_id', 'proposal_scores', 'proposal_clip_sim')


@TRANSFORMS.register_module()
class PackRISInputs(PackSegInputs):
    """Pack a referring sample: image tensor plus a ``SegDataSample``.

    The data sample carries the expression (``text``), the training
    negatives (``neg_texts``), the ids (``ref_id``, ``sent_id``, ``ann_id``,
    ``image_id``), the ``split`` and the untransformed GT box ``gt_bbox``
    (xyxy, original image coordinates) as metainfo, and ``gt_sem_seg`` from
    ``gt_seg_map``. Test pipelines load the mask *after* ``Resize`` so that
    ``gt_sem_seg`` stays at the original resolution for the metrics.

    PCNet adds ``phrases`` (the K cues of the expression), the IaD partner
    (``partner_text``/``partner_phrases``: an expression of another object
    of the same image) and the mask proposals: ``gt_proposals [H, W, M]``
    (uint8, a seg field, so geometric transforms move it) is packed as
    ``data_sample.gt_proposals`` = ``PixelData [M, H, W]``.
    """

    def __init__(self, meta_keys=RIS_META_KEYS) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        if 'text' not in packed['data_samples']:
            raise KeyError('PackRISInputs needs the expression ("text"); '
                           'is the dataset a referring dataset?')
        if 'gt_proposals' in results:
            proposals = np.asarray(results['gt_proposals'])
            if proposals.ndim == 2:
                proposals = proposals[..., None]
            data = torch.from_numpy(
                np.ascontiguousarray(proposals.transpose(2, 0, 1)))
            packed['data_samples'].set_data(
                dict(gt_proposals=PixelData(data=data)))
        return packed
