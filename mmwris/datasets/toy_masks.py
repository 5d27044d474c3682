"""Per-image mask annotation files in the SA-1B layout.

One JSON per image (``{stem}.json`` beside ``{stem}.png``)::

    {"image": {"image_id", "file_name", "height", "width"},
     "annotations": [{"id", "segmentation": COCO RLE ("counts" as str),
                      "bbox": [x, y, w, h], "area", "point_coords": [[x, y]],
                      "predicted_iou", "stability_score", "crop_box"}]}

As in SA-1B there are no labels; ``point_coords`` is one point inside the
mask, here the deterministic :func:`interior_point`.
"""
import json
from typing import List, Tuple

import numpy as np
from scipy import ndimage

from mmwris.proposals.storage import decode_masks, encode_masks


def interior_point(mask: np.ndarray) -> Tuple[float, float]:
    """The pixel of ``mask [H, W]`` farthest from its boundary (the
    Euclidean distance-transform maximum; ties: first in raster order),
    as ``(x, y)`` pixel indices (SAM's point convention: its prompt
    encoder adds the 0.5 to the pixel centre)."""
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        raise ValueError('interior_point of an empty mask.')
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def mask_box(mask: np.ndarray) -> List[float]:
    """The tight ``[x, y, w, h]`` box of ``mask [H, W]`` (COCO)."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()),
            float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def make_mask_record(image_id: int, file_name: str,
                     masks: np.ndarray) -> dict:
    """The SA-1B-style record of an image with instance masks
    ``[N, H, W]`` (0/1, none empty)."""
    height, width = masks.shape[1:]
    annotations = []
    for i, (mask, rle) in enumerate(zip(masks, encode_masks(masks))):
        x, y = interior_point(mask)
        annotations.append(dict(
            id=i + 1, segmentation=rle, bbox=mask_box(mask),
            area=int(mask.sum()), point_coords=[[x, y]], predicted_iou=1.0,
            stability_score=1.0, crop_box=[0, 0, width, height]))
    return dict(image=dict(image_id=image_id, file_name=file_name,
                           height=height, width=width),
                annotations=annotations)


def read_mask_record(path: str) -> Tuple[dict, np.ndarray]:
    """Read a per-image JSON: ``(image info, masks [N, H, W] uint8)``."""
    with open(path) as f:
        record = json.load(f)
    image = record['image']
    masks = decode_masks([a['segmentation'] for a in record['annotations']],
                         image['height'], image['width'], source=path)
    return image, masks
