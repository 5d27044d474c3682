"""IRN's random walk: propagate scores inside the regions the boundaries close.

With the affinities ``a_ij = 1 - max_{k in path(i,j)} B(x_k)`` of all pairs
within ``radius`` (and ``a_ii = 1``), IRN (Sec. 4, following AffinityNet)
builds the transition matrix ``T = A^beta D^-1`` (``A^beta`` element-wise,
``D`` the diagonal of its column sums, i.e. every column sums to 1) and
diffuses the scores ``s`` (one row per instance) as ``s T^t`` with
``t = 2^exp_times``, as in the released IRN / TRIS ``propagate_to_edge``.

Two ways compute the same product:

* ``'dense'`` (the released one): the ``N x N`` matrix, squared
  ``exp_times`` times.  ``N`` is the number of pixels of the stride-4 map:
  a 640x480 image gives 160x120 = 19,200 pixels, so the matrix alone takes
  19,200^2 * 4 B = 1.5 GB and eight squarings cost 8 * 2 N^3 ~ 1.1e14 flops
  (~6e13 multiply-adds).
* ``'sparse'``: ``T`` has at most ``2P + 1`` non-zeros per column (``P`` the
  pair channels of :class:`PathIndex`, 34 for radius 5), so applying it to
  the ``K`` score rows ``2^exp_times`` times (``y <- y T``) costs
  ``2^exp_times * K * N * (2P + 1)`` multiply-adds (3.4e8 for the image above
  and one instance) in ``O(N P)`` memory.  Mathematically identical; float
  rounding differs slightly.

``'auto'`` takes the dense way up to 4096 pixels (a 64 MB matrix) and the
sparse one beyond.
"""
import warnings
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .path_index import PathIndex, edge_to_affinity

DENSE_MAX_PIXELS = 4096


def to_transition_matrix(affinity: Tensor, beta: float, times: int) -> Tensor:
    """``T^(2^times)`` with ``T = A^beta D^-1`` (columns of ``T`` sum to 1).

    Args:
        affinity: ``[N, N]`` non-negative affinities ``A``.
        beta: the exponent that sharpens the affinities.
        times: number of squarings.

    Returns:
        ``[N, N]``.
    """
    scaled = affinity.pow(beta)
    transition = scaled / scaled.sum(dim=0, keepdim=True)
    for _ in range(times):
        transition = transition @ transition
    return transition


def _pair_affinities(edge: Tensor, radius: int) -> Tuple[Tensor, Tensor,
                                                         Tensor]:
    """All pairs of pixels of ``edge`` ``[h, w]`` within ``radius``.

    The map is padded with boundary value 1 (``radius`` columns left and
    right, ``radius`` rows below) so that every pixel of it is a source of
    the :class:`PathIndex`; pairs reaching the padding are dropped.

    Returns:
        ``(first, second, affinity)``: flat indices into the ``h * w`` map
        and ``a_ij`` of each unordered pair, listed once.
    """
    height, width = edge.shape
    padded_width = width + 2 * radius
    padded = F.pad(edge[None], (radius, radius, 0, radius), value=1.0)
    index = PathIndex(radius, (height + radius, padded_width))
    affinity = edge_to_affinity(padded, index.path_indices)[0].reshape(-1)

    def unpad(flat_padded):
        flat_padded = torch.as_tensor(flat_padded, device=edge.device)
        row = flat_padded // padded_width
        col = flat_padded % padded_width - radius
        inside = (row < height) & (col >= 0) & (col < width)
        return row * width + col, inside

    first, first_inside = unpad(index.src_indices)
    second, second_inside = unpad(index.dst_indices)
    first = first.expand_as(second).reshape(-1)
    second = second.reshape(-1)
    keep = (first_inside & second_inside).reshape(-1)
    return first[keep], second[keep], affinity[keep]


def _dense_walk(scores: Tensor, first: Tensor, second: Tensor,
                affinity: Tensor, beta: float, exp_times: int) -> Tensor:
    n_pixels = scores.shape[1]
    dense = torch.eye(n_pixels, dtype=affinity.dtype, device=affinity.device)
    dense[first, second] = affinity
    dense[second, first] = affinity
    return scores @ to_transition_matrix(dense, beta, exp_times)


def _sparse_walk(scores: Tensor, first: Tensor, second: Tensor,
                 affinity: Tensor, beta: float, exp_times: int) -> Tensor:
    n_pixels = scores.shape[1]
    diagonal = torch.arange(n_pixels, device=affinity.device)
    rows = torch.cat([first, second, diagonal])      # i of T_ij
    cols = torch.cat([second, first, diagonal])      # j of T_ij
    weights = torch.cat([affinity, affinity,
                         torch.ones_like(diagonal, dtype=affinity.dtype)])
    weights = weights.pow(beta)
    column_sums = weights.new_zeros(n_pixels).index_add_(0, cols, weights)
    # (y T)^T = T^T y^T: keep T^T as a CSR matrix and the rows as columns
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'Sparse CSR tensor support')
        transposed = torch.sparse_coo_tensor(
            torch.stack([cols, rows]), weights / column_sums[cols],
            (n_pixels, n_pixels), check_invariants=False
        ).coalesce().to_sparse_csr()
    walked = scores.t().contiguous()
    for _ in range(2 ** exp_times):
        walked = transposed @ walked
    return walked.t()


def propagate_to_edge(scores: Tensor, edge: Tensor, radius: int = 5,
                      beta: float = 10.0, exp_times: int = 8,
                      method: str = 'auto') -> Tensor:
    """Random walk of scores up to the boundaries: ``s (1 - B) T^(2^t)``.

    Args:
        scores: ``[K, h, w]`` (one map per instance) or anything viewable as
            such.
        edge: boundary map ``B`` ``[h, w]`` (or ``[1, h, w]``) in ``[0, 1]``.
        radius, beta, exp_times: the pair radius, the affinity exponent and
            the number of squarings (``2^exp_times`` walk steps).
        method: ``'dense'``, ``'sparse'`` or ``'auto'`` (see the module
            docstring).

    Returns:
        ``[K, 1, h, w]``.
    """
    if method not in ('auto', 'dense', 'sparse'):
        raise ValueError(f"method must be 'auto', 'dense' or 'sparse', "
                         f'got {method!r}')
    height, width = scores.shape[-2:]
    edge = edge.reshape(height, width)
    n_pixels = height * width
    if method == 'auto':
        method = 'dense' if n_pixels <= DENSE_MAX_PIXELS else 'sparse'
    first, second, affinity = _pair_affinities(edge, radius)
    seeds = (scores.reshape(-1, height, width) * (1 - edge)).reshape(
        -1, n_pixels)
    walk = _dense_walk if method == 'dense' else _sparse_walk
    walked = walk(seeds, first, second, affinity, beta, exp_times)
    return walked.reshape(-1, 1, height, width)
