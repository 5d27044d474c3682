from .functional import (box_iou, mask_intersection_union, mask_iou,
                         mask_to_box, point_in_box, point_in_mask,
                         released_gt_box, response_peak, tris_box_hits,
                         tris_generate_boxes)
from .metrics import RISMetric

__all__ = [
    'response_peak', 'point_in_mask', 'point_in_box', 'mask_to_box',
    'box_iou', 'mask_intersection_union', 'mask_iou', 'released_gt_box',
    'tris_generate_boxes', 'tris_box_hits', 'RISMetric'
]
