"""From IRN's displacement and boundary maps to a referring foreground mask.

IRN (Sec. 4) predicts, at stride 4, a displacement field ``D`` that points
every pixel to the centroid of its instance, and a boundary map ``B``.
Pixels are grouped into instances by where following ``D`` ends
(:func:`find_centroids`, :func:`cluster_centroids`); each instance keeps the
CAM inside it, which a random walk over the boundary affinities spreads to the
instance's full extent (:func:`~mmwris.pseudo_labels.irn.walk.
propagate_to_edge`).  :func:`irn_foreground` runs that chain for one referring
sample, as the released TRIS ``step_refer/make_ins_seg_labels.py`` does.
"""
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from .walk import propagate_to_edge


def _displacement_at(displacement: np.ndarray, y: np.ndarray,
                     x: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``displacement`` ``[2, h, w]`` at real ``(y, x)``.

    The corners are ``ceil`` and ``floor`` of each coordinate (on an integer
    coordinate both are the same pixel), weighted by the fractional parts, in
    the released evaluation order.  Returns ``[2, *y.shape]`` float64.
    """
    y_up, y_down = np.ceil(y).astype(np.int32), np.floor(y).astype(np.int32)
    x_up, x_down = np.ceil(x).astype(np.int32), np.floor(x).astype(np.int32)
    frac_y = y - y_down
    frac_x = x - x_down
    return (displacement[:, y_up, x_up] * frac_y * frac_x
            + displacement[:, y_down, x_up] * (1 - frac_y) * frac_x
            + displacement[:, y_up, x_down] * frac_y * (1 - frac_x)
            + displacement[:, y_down, x_down] * (1 - frac_y) * (1 - frac_x))


def find_centroids(displacement: np.ndarray, iterations: int = 300
                   ) -> np.ndarray:
    """Follow the displacement field from every pixel to its centroid.

    ``c <- clip(c + D(c))`` repeated ``iterations`` times from ``c = (y, x)``
    of each pixel (IRN's refined centroid estimate), ``D(c)`` bilinear.

    Args:
        displacement: ``[2, h, w]`` (dy, dx) in pixels of the map.
        iterations: refinement steps (IRN uses 300; any value >= 100).

    Returns:
        int32 ``[2, h, w]``: the rounded centroid (y, x) of every pixel.
    """
    displacement = np.asarray(displacement)
    height, width = displacement.shape[1:3]
    grid_y, grid_x = np.mgrid[:height, :width]
    centroids = np.stack([grid_y, grid_x]).astype(np.float32)
    upper = np.array([height - 1, width - 1], np.float32)[:, None, None]
    for _ in range(iterations):
        # float64 step added into the float32 centroids, as released
        centroids += _displacement_at(displacement, centroids[0],
                                      centroids[1])
        centroids = np.clip(centroids, 0, upper)
    return np.round(centroids).astype(np.int32)


def cluster_centroids(centroids: np.ndarray, displacement: np.ndarray,
                      threshold: float = 2.5) -> np.ndarray:
    """Instance map: pixels whose centroids land in the same still region.

    The regions where ``|D| < threshold`` (4-connected components) are the
    candidate centroids; each pixel takes the component found at its
    centroid (0 where the centroid lands outside every component, which is
    then an instance of its own).  The values in use are renumbered
    ``0..n-1`` in increasing order and one-hot encoded.  The component
    numbering of ``scipy.ndimage.label`` may differ from scikit-image's,
    which only permutes the instances.

    Args:
        centroids: int ``[2, h, w]`` from :func:`find_centroids`.
        displacement: ``[2, h, w]``.
        threshold: the displacement length below which a pixel is a centroid
            candidate (2.5 in IRN's supplementary material).

    Returns:
        bool ``[n_instances, h, w]``, exactly one True per pixel.
    """
    displacement = np.asarray(displacement)
    strength = np.sqrt(displacement[1] ** 2 + displacement[0] ** 2)
    components, _ = ndimage.label(strength < threshold)
    cluster = components[centroids[0], centroids[1]]
    values, cluster_ids = np.unique(cluster, return_inverse=True)
    cluster_ids = cluster_ids.reshape(cluster.shape)
    return cluster_ids[None] == np.arange(len(values))[:, None, None]


def irn_foreground(cam: Tensor, edge: Tensor,
                   displacement: Union[Tensor, np.ndarray], radius: int = 5,
                   beta: float = 10.0, exp_times: int = 8,
                   bg_threshold: float = 0.25, stride: int = 4,
                   method: str = 'auto') -> np.ndarray:
    """IRN's instance masks of one referring sample, merged into one mask.

    The released ``make_ins_seg_labels._work`` with a single class: instances
    from the displacement field; the CAM, resized to the stride-``stride``
    map (bilinear, ``align_corners=True``) and cut by each instance mask,
    is walked to the boundaries (``s (1 - B) T^(2^exp_times)``), upsampled
    ``stride`` times (bilinear, ``align_corners=False``), cropped to the
    image, divided by its global maximum and compared by argmax with a
    constant background score ``bg_threshold``.  The union of the pixels won
    by any instance is returned: that is what TRIS's step 2 trains on (its
    dataset sums all instance masks; segments under 1 % of the image get a
    detection score of 0 but stay in the mask), so the released detection /
    scoring step is left out.

    Args:
        cam: ``[H0, W0]`` non-negative CAM of the image.
        edge: ``[h, w]`` boundary map ``B`` in ``[0, 1]`` (sigmoid,
            flip-averaged), ``h = ceil(H0 / stride)``.
        displacement: ``[2, h, w]``.
        radius, beta, exp_times, method: of the random walk.
        bg_threshold: background score against the max-normalised walk.
        stride: of ``edge`` and ``displacement`` with respect to the image.

    Returns:
        bool ``[H0, W0]``.  All False when the walked scores are all zero
        (e.g. an all-zero CAM): the released code divides 0 by 0 there and
        its argmax over the NaNs marks the whole image foreground.
    """
    if isinstance(displacement, Tensor):
        displacement = displacement.detach().cpu().numpy()
    full_height, full_width = cam.shape
    edge = edge.to(cam.device).reshape(displacement.shape[1:])
    instances = cluster_centroids(find_centroids(displacement), displacement)
    small_cam = F.interpolate(cam[None, None], size=instances.shape[1:],
                              mode='bilinear', align_corners=True)[0]
    instance_masks = torch.from_numpy(instances).to(small_cam)
    instance_cams = small_cam * instance_masks
    walked = propagate_to_edge(instance_cams, edge, radius=radius, beta=beta,
                               exp_times=exp_times, method=method)
    walked = F.interpolate(walked, scale_factor=stride, mode='bilinear',
                           align_corners=False)[:, 0, :full_height,
                                                :full_width]
    peak = walked.max()
    if not peak > 0:
        return np.zeros((full_height, full_width), bool)
    background = torch.full_like(walked[:1], bg_threshold)
    scores = torch.cat([background, walked / peak])
    return (scores.argmax(dim=0) != 0).cpu().numpy()
