"""A folder of SA-1B-style per-image mask records."""
import glob
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from mmwris.registry import DATASETS
# Registers the pipeline of this dataset (LoadSAMMaskRecord, ...).
from .transforms import sam_transforms  # noqa: F401


@DATASETS.register_module()
class SAMMaskDataset(BaseDataset):
    """Images with class-agnostic instance masks, one JSON per image
    (``{stem}.json`` beside ``{stem}.png``, see
    :mod:`mmwris.datasets.toy_masks`; SA-1B: ``.jpg``).

    ``data_prefix=dict(img_path=...)`` is the folder (under ``data_root``);
    records are read by the pipeline (``LoadSAMMaskRecord``), so the data
    list holds only ``img_path`` and ``ann_path``, sorted by name.

    Args:
        img_suffix (str): Image suffix. Defaults to ``'.png'``.
    """
    METAINFO = dict(classes=('object', ))

    def __init__(self, *args, img_suffix: str = '.png', **kwargs) -> None:
        self.img_suffix = img_suffix
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        folder = self.data_prefix.get('img_path', '')
        records = sorted(glob.glob(osp.join(folder, '*.json')))
        if not records:
            raise FileNotFoundError(
                f'No mask records (*.json) in "{folder}": generate them with '
                'tools/dataset_converters/make_toy_masks.py.')
        return [dict(img_path=path[:-len('.json')] + self.img_suffix,
                     ann_path=path) for path in records]
