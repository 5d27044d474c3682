"""Pixel pairs within a radius and the paths between them (IRN, Sec. 3).

IRN scores the relation of two pixels ``i`` and ``j`` by the strongest class
boundary that lies on the straight line between them::

    a_ij = 1 - max_{k in path(i, j)} B(x_k)

:class:`PathIndex` enumerates, once per image size, every such pair within
``radius`` together with the pixels of its path, as flat indices ready for
``index_select``.  The enumeration (directions, path pixels, their order)
follows the released IRN / TRIS code (``misc/indexing.py``) exactly, so
affinities and affinity labels line up element by element with it.
"""
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

IGNORE_LABEL = 255


def _search_directions(radius: int) -> List[Tuple[int, int]]:
    """Offsets ``(dy, dx)`` of the partners of a pixel, one per unordered pair.

    Only the half plane "to the right on the same row, or on a row below" is
    listed, so a pair and its mirror are never both present.  Order: the row
    ``dy = 0`` first, then row by row, left to right.
    """
    directions = [(0, dx) for dx in range(1, radius)]
    for dy in range(1, radius):
        directions += [(dy, dx) for dx in range(1 - radius, radius)
                       if dx * dx + dy * dy < radius ** 2]
    return directions


def _path_to(direction: Tuple[int, int]) -> List[Tuple[int, int]]:
    """Pixels of the digital line from ``(0, 0)`` to ``direction``.

    A pixel of the bounding box belongs to the line when its squared distance
    to the continuous segment's supporting line is below 1.  The pixels are
    ordered by decreasing L1 norm (stable, ties in raster order), so the
    destination comes first and the source ``(0, 0)`` last.
    """
    dy, dx = direction
    norm_sq = dy * dy + dx * dx
    inside = [(y, x)
              for y in range(min(0, dy), max(0, dy) + 1)
              for x in range(min(0, dx), max(0, dx) + 1)
              if (dy * x - dx * y) ** 2 / norm_sq < 1]
    return sorted(inside, key=lambda p: -(abs(p[0]) + abs(p[1])))


class PathIndex:
    """Source pixels, their partners within ``radius`` and the paths between.

    Args:
        radius: integer; pairs with ``dy**2 + dx**2 < radius**2`` are
            related.
        size: ``(H, W)`` of the map the indices address (flat index
            ``y * W + x``).

    Attributes:
        radius, radius_floor: ``radius_floor = ceil(radius) - 1`` is the
            largest offset along either axis.
        size: ``(H, W)``.
        search_dst: int ndarray ``[P, 2]`` of offsets ``(dy, dx)`` grouped by
            path length, ascending (the released order of the ``P`` pair
            channels).
        search_paths: list with one int ndarray ``[n_dirs, L, 2]`` per path
            length ``L``: the offsets of the path pixels, destination first,
            source ``(0, 0)`` last.
        path_indices: list of int64 tensors ``[n_dirs, L, N_src]``: the flat
            pixel index of every path pixel for every source pixel.
        src_indices: int64 ndarray ``[N_src]``.
        dst_indices: int64 ndarray ``[P, N_src]``: ``dst_indices[p, s]`` is
            the partner of source ``s`` along ``search_dst[p]``.

    Cropping: the sources are the pixels of rows ``[0, H - radius_floor)`` and
    columns ``[radius_floor, W - radius_floor)``, so every partner (which lies
    on the same row to the right, or on a row below) stays inside the map.
    Since only one half plane of offsets is listed, each unordered pair of
    pixels appears once.  Pairs whose first pixel is in the bottom
    ``radius_floor`` rows or the side margins are not listed; the random walk
    pads the map so that none of its pixels is lost that way.
    """

    def __init__(self, radius: int, size: Tuple[int, int]):
        self.radius = radius
        self.radius_floor = int(np.ceil(radius) - 1)
        self.size = (int(size[0]), int(size[1]))
        height, width = self.size
        src_height = height - self.radius_floor
        src_width = width - 2 * self.radius_floor
        too_small = src_height <= 0 or src_width <= 0
        if int(radius) != radius or radius < 2 or too_small:
            raise ValueError(
                f'PathIndex needs an integer radius >= 2 and a map of at '
                f'least {self.radius_floor + 1} x {2 * self.radius_floor + 1}'
                f' pixels; got radius={radius}, size={self.size}')

        by_length = {}
        for direction in _search_directions(radius):
            path = _path_to(direction)
            by_length.setdefault(len(path), []).append(path)
        self.search_paths = [np.asarray(by_length[length], dtype=np.int64)
                             for length in sorted(by_length)]
        self.search_dst = np.concatenate(
            [paths[:, 0] for paths in self.search_paths], axis=0)

        rows = np.arange(src_height)[:, None]
        cols = np.arange(self.radius_floor,
                         self.radius_floor + src_width)[None, :]
        self.src_indices = (rows * width + cols).reshape(-1).astype(np.int64)
        # An offset (dy, dx) moves a flat index by dy * W + dx; the crop keeps
        # every shifted index on the same (shifted) row.
        self.path_indices = [
            torch.from_numpy(
                (paths[..., 0] * width + paths[..., 1])[..., None]
                + self.src_indices)
            for paths in self.search_paths]
        self.dst_indices = np.concatenate(
            [indices[:, 0].numpy() for indices in self.path_indices], axis=0)


def edge_to_affinity(edge: Tensor,
                     path_indices: Sequence[Union[Tensor, np.ndarray]]
                     ) -> Tensor:
    """Affinities from a boundary map: ``a_ij = 1 - max_{k in path(i,j)} B_k``.

    Args:
        edge: boundary probabilities ``B``, ``[B, H, W]`` or ``[B, 1, H, W]``.
        path_indices: ``PathIndex(radius, (H, W)).path_indices``.

    Returns:
        ``[B, P, N_src]``, channel ``p`` is the pair ``(src, src +
        search_dst[p])``.  Differentiable in ``edge`` (the gradient of the max
        goes to one maximising path pixel).
    """
    flat_edge = edge.reshape(edge.shape[0], -1)
    affinities = []
    for indices in path_indices:
        indices = torch.as_tensor(indices, device=edge.device)
        n_dirs, length, n_src = indices.shape
        on_path = flat_edge.index_select(1, indices.reshape(-1))
        on_path = on_path.view(-1, n_dirs, length, n_src)
        affinities.append(1 - on_path.max(dim=2).values)
    return torch.cat(affinities, dim=1)


def affinity_labels(labels: np.ndarray, index: PathIndex
                    ) -> Tuple[Tensor, Tensor, Tensor]:
    """Pairwise training labels of IRN's inter-pixel relation loss.

    Args:
        labels: ``[H, W]`` uint8 seed map, 0 background, 1 foreground (any
            value below 255 is a class), 255 ignored.  ``(H, W)`` must be
            ``index.size``.
        index: the :class:`PathIndex` of the pairs.

    Returns:
        ``(bg_pos, fg_pos, neg)``, float32 tensors ``[P, N_src]`` (1 or 0):
        a pair counts only when neither pixel is ignored; ``bg_pos`` both
        background, ``fg_pos`` both the same foreground class, ``neg``
        different classes.
    """
    labels = np.asarray(labels)
    if labels.shape != index.size:
        raise ValueError(f'affinity_labels: label map of shape {labels.shape}'
                         f' does not match the PathIndex size {index.size}')
    flat = labels.reshape(-1)
    label_src = flat[index.src_indices][None, :]
    label_dst = flat[index.dst_indices]
    valid = (label_src < IGNORE_LABEL) & (label_dst < IGNORE_LABEL)
    same = label_src == label_dst
    positive = same & valid

    def as_tensor(mask):
        return torch.from_numpy(mask.astype(np.float32))

    return (as_tensor(positive & (label_src == 0)),
            as_tensor(positive & (label_src > 0)),
            as_tensor(~same & valid))
