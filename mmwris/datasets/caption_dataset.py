"""Image-caption pairs from an open_clip CSV file."""
import csv
import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path

from mmwris.registry import DATASETS
from mmwris.structures import fields as F


@DATASETS.register_module()
class CaptionDataset(BaseDataset):
    """Image-caption pairs in open_clip's CSV format (``--csv-separator``,
    ``--csv-img-key``, ``--csv-caption-key``; the toy corpus of
    ``tools/dataset_converters/make_toy_corpora.py``).

    One sample per row: ``img_path`` (relative paths are joined with
    ``data_root`` / ``data_prefix['img_path']``), the caption as ``text``,
    the row index as ``image_id`` and, when ``metainfo['classes']`` is set,
    ``category_id``: the index of the row's ``label_key`` column in the
    classes (the zero-shot classes of :class:`CLIPRetrievalMetric`).
    Captions are tokenised by the model (:func:`clip_token_ids`).

    Args:
        ann_file (str): The CSV file, relative to ``data_root``.
        separator (str): Column separator. Defaults to tab (open_clip's).
        img_key (str): Image path column. Defaults to ``'filepath'``.
        caption_key (str): Caption column. Defaults to ``'title'``.
        label_key (str, optional): Class name column, read when
            ``metainfo['classes']`` is set. Defaults to ``'label'``.
    """
    METAINFO = dict(classes=())

    def __init__(self,
                 ann_file: str = '',
                 separator: str = '\t',
                 img_key: str = 'filepath',
                 caption_key: str = 'title',
                 label_key: Optional[str] = 'label',
                 data_prefix: dict = dict(img_path=''),
                 **kwargs) -> None:
        self.separator = separator
        self.img_key = img_key
        self.caption_key = caption_key
        self.label_key = label_key
        super().__init__(ann_file=ann_file, data_prefix=data_prefix,
                         **kwargs)

    def load_data_list(self) -> List[dict]:
        classes = list(self.metainfo.get('classes') or ())
        with get_local_path(self.ann_file) as local_path:
            with open(local_path, newline='', encoding='utf-8') as f:
                rows = list(csv.DictReader(f, delimiter=self.separator))
        needed = [self.img_key, self.caption_key]
        if classes and self.label_key:
            needed.append(self.label_key)
        columns = list(rows[0]) if rows else []
        missing = [key for key in needed if key not in columns]
        if missing:
            raise ValueError(
                f'{self.ann_file} has no column(s) {missing} (columns '
                f'{columns}; separator {self.separator!r}).')
        data_list = []
        for index, row in enumerate(rows):
            info = {
                'img_path': osp.join(self.data_prefix['img_path'],
                                     row[self.img_key]),
                F.TEXT: row[self.caption_key],
                F.IMAGE_ID: index,
            }
            if classes and self.label_key:
                label = row[self.label_key]
                if label not in classes:
                    raise ValueError(
                        f'{self.ann_file} row {index + 1}: label {label!r} '
                        f'is not one of the classes {classes}.')
                info[F.CATEGORY_ID] = classes.index(label)
            data_list.append(info)
        return data_list
