from mmseg.datasets.transforms import PackSegInputs

from mmwris.registry import TRANSFORMS

RIS_META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'pad_shape',
                 'scale_factor', 'flip', 'flip_direction', 'text',
                 'neg_texts', 'sent_id', 'ref_id', 'ann_id', 'image_id',
                 'category_id', 'split', 'gt_bbox')


@TRANSFORMS.register_module()
class PackRISInputs(PackSegInputs):
    """Pack a referring sample: image tensor plus a ``SegDataSample``.

    The data sample carries the expression (``text``), the training
    negatives (``neg_texts``), the ids (``ref_id``, ``sent_id``, ``ann_id``,
    ``image_id``), the ``split`` and the untransformed GT box ``gt_bbox``
    (xyxy, original image coordinates) as metainfo, and ``gt_sem_seg`` from
    ``gt_seg_map``. Test pipelines load the mask *after* ``Resize`` so that
    ``gt_sem_seg`` stays at the original resolution for the metrics.
    """

    def __init__(self, meta_keys=RIS_META_KEYS) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        if 'text' not in packed['data_samples']:
            raise KeyError('PackRISInputs needs the expression ("text"); '
                           'is the dataset a referring dataset?')
        return packed
