"""RefCOCO-M (the re-annotated RefCOCO UNC val split) under its own split
label, so that one ``tools/test.py`` run reports it beside RefCOCO val."""
from typing import List

from mmwris.registry import DATASETS
from .refcoco import RefCOCODataset


@DATASETS.register_module()
class RefCOCOMDataset(RefCOCODataset):
    """RefCOCO-M converted by ``tools/dataset_converters/refcoco_m.py``
    (refer layout, split ``val``, RLE masks).

    Every sample's ``split`` becomes ``split_label``, so ``RISMetric``
    reports ``{split_label}/mIoU`` etc. and a ``ConcatDataset`` with RefCOCO
    val (``val/mIoU``) keeps the two apart.

    Args:
        split_label (str): The split name the metrics see. Defaults to
            ``'refcoco-m_val'``.
        **kwargs: ``RefCOCODataset`` arguments (``split`` selects the refs,
            ``'val'`` for RefCOCO-M).
    """

    def __init__(self, split_label: str = 'refcoco-m_val', **kwargs) -> None:
        self.split_label = split_label
        kwargs.setdefault('split', 'val')
        kwargs.setdefault('refs_file', 'refs(unc).p')
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        for info in data_list:
            info['split'] = self.split_label
        return data_list
