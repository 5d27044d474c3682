from .functional import (box_iou, mask_intersection_union, mask_iou,
                         mask_to_box, point_in_box, point_in_mask,
                         response_peak)
from .metrics import RISMetric

__all__ = [
    'response_peak', 'point_in_mask', 'point_in_box', 'mask_to_box',
    'box_iou', 'mask_intersection_union', 'mask_iou', 'RISMetric'
]
