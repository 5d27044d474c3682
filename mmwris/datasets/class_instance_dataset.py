"""Class-level and object-centric curriculum sources (PPT).

PPT's multi-source curriculum trains first on simple, precise alignments
(object-centric images with their caption; class names on instance crops
or whole images) before the referring data. These datasets produce the
same data infos as :class:`RefCOCODataset` (``text``, ids, ``gt_bbox``,
``segmentation``, ``other_refs``, the draw key), so the referring
pipelines (``SampleNegativeTexts``, ``LoadRISAnnotations``,
``PackRISInputs``) and a model trained on them work unchanged.
"""
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from pycocotools import mask as mask_utils

from mmwris.registry import DATASETS, TRANSFORMS
from mmwris.structures import fields as F
from .caption_dataset import CaptionDataset
from .draws import DRAW_KEY, key_of
from .refcoco import first_ids, load_refs, read_coco_file

CROP_BBOX = 'crop_bbox'  # pipeline-only: xyxy int crop of a crop sample
INSTANCE_SEGMENTATIONS = 'instance_segmentations'  # image mode, merged lazily


def merge_segmentations(segmentations: Sequence, height: int,
                        width: int):
    """The union of COCO segmentations as one segmentation that
    ``decode_coco_segmentation`` reads: the polygons themselves when all
    are polygons, else one compressed RLE (``counts`` as str)."""
    if len(segmentations) == 1:
        return segmentations[0]
    if all(isinstance(s, list) for s in segmentations):
        return [poly for s in segmentations for poly in s]
    rles = []
    for seg in segmentations:
        if isinstance(seg, list):
            rles.append(mask_utils.merge(
                mask_utils.frPyObjects(seg, height, width)))
        elif isinstance(seg.get('counts'), list):
            rles.append(mask_utils.frPyObjects(seg, height, width))
        else:
            rle = dict(seg)
            if isinstance(rle['counts'], str):
                rle['counts'] = rle['counts'].encode('ascii')
            rles.append(rle)
    merged = mask_utils.merge(rles)
    return dict(size=[int(s) for s in merged['size']],
                counts=merged['counts'].decode('ascii'))


class _ContextMixin:
    """What ``RefCOCODataset`` gives its pipeline besides the data info:
    the draw key of each index and, for ``SampleNegativeTexts``, the
    expression pool (bound through ``bind_dataset``)."""

    def _bind_pipeline(self) -> None:
        self._pool = None
        for transform in self.pipeline.transforms:
            mode = getattr(transform, 'mode', None)
            if type(transform).__name__ == 'SampleNegativeTexts' \
                    and mode == 'topped_up':
                raise ValueError(
                    f"{type(self).__name__}: SampleNegativeTexts(mode="
                    "'topped_up') tops up from other images without "
                    'comparing texts, so a class name (or caption) could be '
                    "its own negative. Use mode='same_image_with_"
                    "replacement' (rejects the positive text) or "
                    "'same_image'.")
            if hasattr(transform, 'bind_dataset'):
                transform.bind_dataset(self)

    def expression_pool(self) -> List[Tuple[int, Tuple[str, ...]]]:
        """``(image_id, (text, ))`` of every sample, in index order."""
        if self._pool is None:
            self._pool = [(info[F.IMAGE_ID], (info[F.TEXT], ))
                          for info in (self.get_data_info(i)
                                       for i in range(len(self)))]
        return self._pool

    def prepare_data(self, idx: int):
        data_info = self.get_data_info(idx)
        data_info[DRAW_KEY] = key_of(idx)
        segs = data_info.pop(INSTANCE_SEGMENTATIONS, None)
        if segs is not None:
            data_info[F.SEGMENTATION] = merge_segmentations(
                segs, data_info['height'], data_info['width'])
        try:
            return self.pipeline(data_info)
        except Exception as e:
            message = (f'{e} (while loading image_id='
                       f'{data_info.get(F.IMAGE_ID)}, text '
                       f'{data_info.get(F.TEXT)!r}, image '
                       f'{data_info.get("img_path")})')
            try:
                error = type(e)(message)
            except TypeError:
                error = RuntimeError(message)
            raise error from e


@DATASETS.register_module()
class ClassInstanceDataset(_ContextMixin, BaseDataset):
    """Class-level samples from COCO instances (no expressions): the middle
    source of PPT's curriculum.

    * ``mode='crop'``: one sample per instance; the image is the instance's
      box, enlarged by ``crop_margin`` of its size on each side and clipped
      to the image (``crop_bbox``, xyxy int, applied by the ``CropToBox``
      transform), ``text`` = the category name.
    * ``mode='image'``: one sample per (image, category present): the whole
      image, ``text`` = the category name, the mask = the union of the
      category's instances, ``gt_bbox`` = their union box.

    In both modes ``other_refs`` holds the *other* categories present in
    the image (one pseudo ref each, ``sentences = [(None, name)]``), so
    ``SampleNegativeTexts(mode='same_image_with_replacement')`` draws the
    negatives from them (and, for an image with one category, other
    category names of the dataset, never the positive one).
    ``mode='topped_up'`` is refused: it could draw the positive name.

    Data info: ``img_path``, ``image_id``, ``category_id``, ``ann_id``
    (crop mode), ``text``, ``split``, ``height``, ``width``, ``gt_bbox``
    (xyxy, original image), ``segmentation``, ``crop_bbox`` (crop mode),
    ``other_refs``.

    Args:
        ann_file (str): COCO instances JSON with ``categories``.
        mode (str): ``'crop'`` or ``'image'``.
        text_template (str): Format of the text from the category name.
            Defaults to ``'{}'``.
        crop_margin (float): Crop mode: context added on each side, as a
            fraction of the box size. Defaults to 0.1.
        min_box_size (float): Skip instances whose box is smaller than this
            (pixels, either side). Defaults to 0.
        min_area (float): Skip instances of a smaller ``area``. Defaults
            to 0.
        with_crowd (bool): Use ``iscrowd`` annotations. Defaults to False.
        exclude_refs (list[dict], optional): Drop the images of these refer
            splits (e.g. RefCOCO's val/testA/testB images, which are COCO
            train2014 images too): ``dict(refs_file=..., splits=[...])``,
            ``refs_file`` relative to ``data_root`` unless absolute.
        split (str): The ``split`` recorded in each sample. Defaults to
            ``'train'``.
        check_images (bool): Check that the image files exist. Defaults to
            True.
    """
    METAINFO = dict(classes=('background', 'target'),
                    palette=[[0, 0, 0], [255, 255, 255]])
    MODES = ('crop', 'image')

    def __init__(self,
                 ann_file: str = 'instances.json',
                 mode: str = 'crop',
                 text_template: str = '{}',
                 crop_margin: float = 0.1,
                 min_box_size: float = 0.0,
                 min_area: float = 0.0,
                 with_crowd: bool = False,
                 exclude_refs: Optional[Sequence[dict]] = None,
                 split: str = 'train',
                 check_images: bool = True,
                 data_prefix: dict = dict(img_path='images'),
                 **kwargs) -> None:
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got '
                             f'{mode!r}.')
        if crop_margin < 0:
            raise ValueError(f'crop_margin must be >= 0, got {crop_margin}.')
        if '{}' not in text_template:
            raise ValueError('text_template must contain "{}" (the category '
                             f'name), got {text_template!r}.')
        self.mode = mode
        self.text_template = text_template
        self.crop_margin = crop_margin
        self.min_box_size = min_box_size
        self.min_area = min_area
        self.with_crowd = with_crowd
        self.exclude_refs = [dict(e) for e in exclude_refs or ()]
        self.split = split
        self.check_images = check_images
        self.categories: Dict[int, str] = {}
        super().__init__(ann_file=ann_file, data_prefix=data_prefix,
                         **kwargs)
        if mode == 'crop':
            self._check_crop_pipeline()
        self._bind_pipeline()

    def _check_crop_pipeline(self) -> None:
        names = [type(t).__name__ for t in self.pipeline.transforms]
        if 'CropToBox' not in names:
            raise ValueError(
                "ClassInstanceDataset(mode='crop') needs CropToBox in its "
                'pipeline (after LoadImageFromFile and LoadRISAnnotations, '
                f'before Resize); the pipeline is {names}.')
        if 'LoadRISAnnotations' in names and names.index(
                'LoadRISAnnotations') > names.index('CropToBox'):
            raise ValueError(
                'CropToBox must come after LoadRISAnnotations (the mask is '
                f'decoded at the image size, then cropped); got {names}.')

    def _join_prefix(self) -> None:
        super()._join_prefix()
        for entry in self.exclude_refs:
            if self.data_root and not osp.isabs(entry['refs_file']):
                entry['refs_file'] = osp.join(self.data_root,
                                              entry['refs_file'])

    def _excluded_images(self) -> set:
        excluded = set()
        for entry in self.exclude_refs:
            if 'refs_file' not in entry or 'splits' not in entry:
                raise ValueError('exclude_refs entries are dict(refs_file, '
                                 f'splits), got {entry}.')
            refs = load_refs(entry['refs_file'])
            splits = [entry['splits']] if isinstance(entry['splits'], str) \
                else list(entry['splits'])
            excluded |= {ref['image_id'] for ref in refs
                         if ref['split'] in splits}
        return excluded

    def _keep(self, ann: dict, img: dict) -> bool:
        if ann.get('iscrowd', 0) and not self.with_crowd:
            return False
        x, y, w, h = (float(v) for v in ann['bbox'])
        if not (w > 0 and h > 0 and x < img['width'] and y < img['height']
                and x + w > 0 and y + h > 0):
            return False
        if min(w, h) < self.min_box_size:
            return False
        return float(ann.get('area', w * h)) >= self.min_area

    def crop_box(self, bbox: Sequence[float], width: int,
                 height: int) -> List[int]:
        """The crop (xyxy int) of a COCO box ``[x, y, w, h]``: the box plus
        ``crop_margin`` of its size on each side, clipped to the image,
        at least one pixel."""
        x, y, w, h = (float(v) for v in bbox)
        mx, my = self.crop_margin * w, self.crop_margin * h
        x0 = int(np.clip(np.floor(x - mx), 0, width - 1))
        y0 = int(np.clip(np.floor(y - my), 0, height - 1))
        x1 = int(np.clip(np.ceil(x + w + mx), x0 + 1, width))
        y1 = int(np.clip(np.ceil(y + h + my), y0 + 1, height))
        return [x0, y0, x1, y1]

    def load_data_list(self) -> List[dict]:
        coco = read_coco_file(self.ann_file)
        if not coco.get('categories'):
            raise ValueError(f'{self.ann_file} has no "categories": the '
                             'class names are the texts.')
        self.categories = {c['id']: str(c['name']).strip()
                           for c in coco['categories']}
        images = {img['id']: img for img in coco['images']}
        excluded = self._excluded_images()
        by_image = defaultdict(list)
        for ann in coco['annotations']:
            img = images.get(ann['image_id'])
            if img is None:
                raise KeyError(f'ann_id={ann["id"]} has image_id='
                               f'{ann["image_id"]}, which is not in '
                               f'{self.ann_file}.')
            if ann['category_id'] not in self.categories:
                raise KeyError(f'ann_id={ann["id"]} has category_id='
                               f'{ann["category_id"]}, which is not in the '
                               f'categories of {self.ann_file}.')
            if img['id'] in excluded or not self._keep(ann, img):
                continue
            by_image[img['id']].append(ann)
        data_list = []
        missing = []
        for image_id in sorted(by_image):
            img, anns = images[image_id], by_image[image_id]
            img_path = osp.join(self.data_prefix.get('img_path', ''),
                                img['file_name'])
            if self.check_images and not osp.isfile(img_path):
                missing.append(img_path)
                continue
            anns = sorted(anns, key=lambda a: a['id'])
            cats = sorted({a['category_id'] for a in anns})
            base = dict(img_path=img_path, image_id=image_id,
                        height=img['height'], width=img['width'],
                        split=self.split)
            if self.mode == 'crop':
                for ann in anns:
                    x, y, w, h = (float(v) for v in ann['bbox'])
                    data_list.append(dict(
                        base, ann_id=ann['id'],
                        category_id=ann['category_id'],
                        text=self._text(ann['category_id']),
                        gt_bbox=[x, y, x + w, y + h],
                        segmentation=ann['segmentation'],
                        crop_bbox=self.crop_box(ann['bbox'], img['width'],
                                                img['height']),
                        other_refs=self._others(cats, ann['category_id'])))
            else:
                for cat in cats:
                    mine = [a for a in anns if a['category_id'] == cat]
                    boxes = np.array([a['bbox'] for a in mine], float)
                    data_list.append(dict(
                        base, category_id=cat, text=self._text(cat),
                        gt_bbox=[float(boxes[:, 0].min()),
                                 float(boxes[:, 1].min()),
                                 float((boxes[:, 0] + boxes[:, 2]).max()),
                                 float((boxes[:, 1] + boxes[:, 3]).max())],
                        instance_segmentations=[
                            a['segmentation'] for a in mine],
                        other_refs=self._others(cats, cat)))
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} images of {self.ann_file} do not exist: '
                f'{first_ids(missing, 5)} (or set check_images=False).')
        if not data_list:
            raise ValueError(f'No instance of {self.ann_file} is kept (mode '
                             f'{self.mode!r}, min_box_size '
                             f'{self.min_box_size}, min_area '
                             f'{self.min_area}, {len(excluded)} images '
                             'excluded).')
        return data_list

    def _text(self, category_id: int) -> str:
        return self.text_template.format(self.categories[category_id])

    def _others(self, cats: Sequence[int], own: int) -> List[dict]:
        return [{F.REF_ID: None,
                 F.SENTENCES: [(None, self._text(cat))]}
                for cat in cats if cat != own]


@DATASETS.register_module()
class ObjectCentricCaptionDataset(_ContextMixin, CaptionDataset):
    """:class:`CaptionDataset` (one object per image, ``text`` = caption)
    as a curriculum source: each index carries its draw key, and
    ``SampleNegativeTexts(mode='same_image_with_replacement')`` draws
    negatives among the other captions (never the same text; a caption of
    the same class, e.g. "a red circle" for "a photo of a red circle", may
    be drawn). ``other_refs`` is empty (one object per image).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._bind_pipeline()

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        for info in data_list:
            info[F.OTHER_REFS] = []
            info[F.SPLIT] = 'train' if not self.test_mode else 'val'
        return data_list


@TRANSFORMS.register_module()
class CropToBox(BaseTransform):
    """Crop the image (and ``seg_fields``, ``gt_bboxes``) to ``crop_bbox``
    (xyxy int, set by ``ClassInstanceDataset(mode='crop')``).

    Put it after ``LoadImageFromFile`` and ``LoadRISAnnotations`` and
    before ``Resize``. The crop becomes the sample's image: ``img_shape``,
    ``ori_shape``, ``height`` and ``width`` are the crop's, and ``gt_bbox``
    is moved into crop coordinates. A sample without ``crop_bbox`` passes
    unchanged.
    """

    def transform(self, results: dict) -> dict:
        box = results.get(CROP_BBOX)
        if box is None:
            return results
        x0, y0, x1, y1 = (int(v) for v in box)
        img = results['img']
        if not (0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]):
            raise ValueError(f'crop_bbox {box} is outside the '
                             f'{img.shape[1]}x{img.shape[0]} image.')
        results['img'] = img[y0:y1, x0:x1]
        for key in results.get('seg_fields', []):
            results[key] = results[key][y0:y1, x0:x1]
        if 'gt_bboxes' in results:
            boxes = np.asarray(results['gt_bboxes'], np.float32).copy()
            boxes[:, 0::2] = np.clip(boxes[:, 0::2] - x0, 0, x1 - x0)
            boxes[:, 1::2] = np.clip(boxes[:, 1::2] - y0, 0, y1 - y0)
            results['gt_bboxes'] = boxes
        if F.GT_BBOX in results:
            bx0, by0, bx1, by1 = results[F.GT_BBOX]
            results[F.GT_BBOX] = [
                float(np.clip(bx0 - x0, 0, x1 - x0)),
                float(np.clip(by0 - y0, 0, y1 - y0)),
                float(np.clip(bx1 - x0, 0, x1 - x0)),
                float(np.clip(by1 - y0, 0, y1 - y0))]
        shape = (y1 - y0, x1 - x0)
        results['img_shape'] = results['ori_shape'] = shape
        results['height'], results['width'] = shape
        return results
