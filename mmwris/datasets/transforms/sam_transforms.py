"""The SAM pretraining pipeline: load an SA-1B-style record, resize the
longest side to the SAM image size, pack."""
import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmwris.datasets.toy_masks import interior_point, read_mask_record
from mmwris.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadSAMMaskRecord(BaseTransform):
    """Read ``img_path`` (RGB) and the masks of ``ann_path``.

    Adds ``img [H, W, 3]`` uint8 RGB, ``gt_masks [N, H, W]`` uint8,
    ``prompt_points [N, 2]`` (:func:`interior_point`, x y) and
    ``prompt_boxes [N, 4]`` (tight xyxy, inclusive pixel indices), the
    evaluation prompts, and ``ori_shape``/``img_shape``.
    """

    def transform(self, results: dict) -> dict:
        img = cv2.imread(results['img_path'], cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f'Cannot read {results["img_path"]}.')
        image, masks = read_mask_record(results['ann_path'])
        results['img'] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        results['gt_masks'] = masks
        results['prompt_points'] = np.array(
            [interior_point(m) for m in masks], np.float32).reshape(-1, 2)
        boxes = []
        for m in masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
        results['prompt_boxes'] = np.array(boxes, np.float32).reshape(-1, 4)
        results['image_id'] = image['image_id']
        results['ori_shape'] = results['img_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class SAMResizeLongestSide(BaseTransform):
    """Resize as ``SamPredictor`` does (``ResizeLongestSide``: the image
    bilinear through PIL, prompts scaled); masks nearest. Keeps the
    original masks as ``gt_masks_ori`` when ``keep_original``.

    Args:
        size (int): The SAM image size (longest side after resizing).
        keep_original (bool): Keep ``gt_masks_ori`` (for evaluation).
    """

    def __init__(self, size: int, keep_original: bool = False) -> None:
        from segment_anything.utils.transforms import ResizeLongestSide
        self.size = size
        self.keep_original = keep_original
        self.resizer = ResizeLongestSide(size)

    def transform(self, results: dict) -> dict:
        ori = results['img'].shape[:2]
        results['img'] = self.resizer.apply_image(results['img'])
        h, w = results['img'].shape[:2]
        masks = results['gt_masks']
        if self.keep_original:
            results['gt_masks_ori'] = masks
        results['gt_masks'] = np.stack([
            cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
            for m in masks
        ]) if len(masks) else np.zeros((0, h, w), np.uint8)
        results['prompt_points'] = self.resizer.apply_coords(
            results['prompt_points'], ori).astype(np.float32)
        results['prompt_boxes'] = self.resizer.apply_boxes(
            results['prompt_boxes'], ori).astype(np.float32).reshape(-1, 4)
        results['img_shape'] = (h, w)
        return results


@TRANSFORMS.register_module()
class PackSAMInputs(BaseTransform):
    """-> ``inputs [3, h, w]`` uint8 and a ``BaseDataElement`` with
    ``gt_masks``, ``prompt_points``, ``prompt_boxes`` (and ``gt_masks_ori``)
    as tensors; metainfo ``image_id``, ``img_path``, ``ori_shape``,
    ``img_shape``."""

    FIELDS = ('gt_masks', 'gt_masks_ori', 'prompt_points', 'prompt_boxes')
    META = ('image_id', 'img_path', 'ori_shape', 'img_shape')

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(results['img'].transpose(2, 0, 1))
        sample = BaseDataElement(
            metainfo={k: results[k] for k in self.META if k in results})
        for key in self.FIELDS:
            if key in results:
                setattr(sample, key, torch.from_numpy(
                    np.ascontiguousarray(results[key])))
        return dict(inputs=torch.from_numpy(img), data_samples=sample)
