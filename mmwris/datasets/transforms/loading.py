import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from pycocotools import mask as mask_utils

from mmwris.registry import TRANSFORMS


def decode_coco_segmentation(segmentation, height: int,
                             width: int) -> np.ndarray:
    """Decode a COCO polygon list or RLE (compressed or not) to a mask.

    Returns:
        np.ndarray: ``[height, width]`` uint8 mask with values {0, 1}.
    """
    if isinstance(segmentation, list):
        if not segmentation:
            raise ValueError('empty polygon list')
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation, dict) and 'counts' in segmentation:
        if isinstance(segmentation['counts'], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation)
            if isinstance(rle['counts'], str):
                rle['counts'] = rle['counts'].encode('ascii')
        if list(rle['size']) != [height, width]:
            raise ValueError(f'RLE size {rle["size"]} does not match the '
                             f'image size {[height, width]}')
    else:
        raise ValueError(
            f'unknown COCO segmentation format {type(segmentation).__name__}')
    return mask_utils.decode(rle).astype(np.uint8)


def load_pseudo_label(path: str, height: int, width: int) -> np.ndarray:
    """Read a pseudo-label PNG: ``[height, width]`` uint8 in {0, 1, 255}.

    Palette PNGs give their indices. Raises ``ValueError`` naming the file
    when it is not single-channel, not of size ``(height, width)`` or holds
    other values.
    """
    label = mmcv.imfrombytes(
        fileio.get(path), flag='unchanged', backend='pillow')
    if label is None or label.ndim != 2:
        raise ValueError(f'Pseudo label {path} must be a single-channel '
                         'PNG (0 background, 1 foreground, 255 ignore).')
    if label.shape != (height, width):
        raise ValueError(f'Pseudo label {path} has size {label.shape}, but '
                         f'its image is {(height, width)} (height, width).')
    values = np.unique(label)
    if not np.isin(values, (0, 1, 255)).all():
        raise ValueError(f'Pseudo label {path} holds the values '
                         f'{values.tolist()}; only 0 (background), 1 '
                         '(foreground) and 255 (ignore) are allowed.')
    return label.astype(np.uint8)


@TRANSFORMS.register_module()
class LoadRISAnnotations(BaseTransform):
    """Decode the referred object's mask and box.

    Adds ``gt_seg_map`` (``[H, W]`` uint8, 1 = referred object, decoded with
    pycocotools at the original resolution) to ``seg_fields`` so geometric
    transforms move it, and ``gt_bboxes`` (``[1, 4]`` float32 xyxy) which
    they move too. ``gt_bbox`` keeps the untransformed box for metrics.

    With ``pseudo_label_path`` in the results (TRIS step 2, see
    ``RefCOCODataset(pseudo_label_dir=...)``) that single-channel PNG (0
    background, 1 foreground, 255 ignore, at the original size) is the
    ``gt_seg_map`` instead of the GT polygon; nearest-neighbour resizing
    keeps the 255 pixels. The boxes still come from the GT annotation.

    Required keys: ``segmentation``, ``height``, ``width``, ``gt_bbox``.
    """

    def transform(self, results: dict) -> dict:
        if 'pseudo_label_path' in results:
            mask = load_pseudo_label(results['pseudo_label_path'],
                                     results['height'], results['width'])
        else:
            try:
                mask = decode_coco_segmentation(results['segmentation'],
                                                results['height'],
                                                results['width'])
            except Exception as e:
                raise ValueError(f'Cannot decode the mask of ann_id='
                                 f'{results.get("ann_id")}: {e}') from e
            if not mask.any():
                raise ValueError(
                    f'The mask of ann_id={results.get("ann_id")} is empty '
                    '(a zero-area polygon or one outside its '
                    f'{results["width"]}x{results["height"]} image).')
        results['gt_seg_map'] = mask
        results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in results['seg_fields']:
            results['seg_fields'].append('gt_seg_map')
        results['gt_bboxes'] = np.array([results['gt_bbox']],
                                        dtype=np.float32)
        return results
