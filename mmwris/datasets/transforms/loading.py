import numpy as np
from mmcv.transforms import BaseTransform
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


@TRANSFORMS.register_module()
class LoadRISAnnotations(BaseTransform):
    """Decode the referred object's mask and box.

    Adds ``gt_seg_map`` (``[H, W]`` uint8, 1 = referred object, decoded with
    pycocotools at the original resolution) to ``seg_fields`` so geometric
    transforms move it, and ``gt_bboxes`` (``[1, 4]`` float32 xyxy) which
    they move too. ``gt_bbox`` keeps the untransformed box for metrics.

    Required keys: ``segmentation``, ``height``, ``width``, ``gt_bbox``.
    """

    def transform(self, results: dict) -> dict:
        try:
            mask = decode_coco_segmentation(results['segmentation'],
                                            results['height'],
                                            results['width'])
        except Exception as e:
            raise ValueError(f'Cannot decode the mask of ann_id='
                             f'{results.get("ann_id")}: {e}') from e
        results['gt_seg_map'] = mask
        results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in results['seg_fields']:
            results['seg_fields'].append('gt_seg_map')
        results['gt_bboxes'] = np.array([results['gt_bbox']],
                                        dtype=np.float32)
        return results
