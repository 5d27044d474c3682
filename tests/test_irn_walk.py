"""IRN inference maths (Ahn et al., CVPR 2019) on hand-worked cases: the
pair/path enumeration, affinities from boundaries, affinity labels, the
random walk and the instance grouping by displacement."""
import numpy as np
import pytest
import torch

from mmwris.pseudo_labels.irn.path_index import (PathIndex, affinity_labels,
                                                 edge_to_affinity)


# ------------------------------------------------------------- PathIndex
def test_path_index_radius2_directions_and_paths():
    index = PathIndex(2, (4, 4))
    assert index.radius_floor == 1
    # grouped by path length (2 then 4), direction order inside a group
    np.testing.assert_array_equal(index.search_dst,
                                  [[0, 1], [1, 0], [1, -1], [1, 1]])
    length2, length4 = index.search_paths
    np.testing.assert_array_equal(length2, [[[0, 1], [0, 0]],
                                            [[1, 0], [0, 0]]])
    # destination first, source last, ties of the L1 norm in raster order
    np.testing.assert_array_equal(length4, [
        [[1, -1], [0, -1], [1, 0], [0, 0]],
        [[1, 1], [0, 1], [1, 0], [0, 0]]])


def test_path_index_radius2_indices_on_4x4_grid():
    index = PathIndex(2, (4, 4))
    # sources: rows 0..2, columns 1..2 of   0  1  2  3
    #                                       4  5  6  7
    #                                       8  9 10 11
    #                                      12 13 14 15
    np.testing.assert_array_equal(index.src_indices, [1, 2, 5, 6, 9, 10])
    np.testing.assert_array_equal(index.dst_indices, [
        [2, 3, 6, 7, 10, 11],      # (0, 1)
        [5, 6, 9, 10, 13, 14],     # (1, 0)
        [4, 5, 8, 9, 12, 13],      # (1, -1)
        [6, 7, 10, 11, 14, 15]])   # (1, 1)
    short, long = index.path_indices
    assert short.dtype == long.dtype == torch.int64
    assert tuple(long.shape) == (2, 4, 6)
    # source 5 towards (1, -1): 8, then 4 and 9, then itself
    np.testing.assert_array_equal(long[0, :, 2], [8, 4, 9, 5])
    for paths in index.path_indices:
        np.testing.assert_array_equal(paths[:, -1], np.broadcast_to(
            index.src_indices, paths[:, -1].shape))


def test_path_index_radius5_lists_every_pair_once():
    index = PathIndex(5, (12, 14))
    assert len(index.search_dst) == 34        # 4 + 9 + 9 + 7 + 5
    lengths = [paths.shape[1] for paths in index.search_paths]
    assert lengths == sorted(lengths)
    dy, dx = index.search_dst.T
    assert np.all(dy * dy + dx * dx < 25)
    assert np.all((dy > 0) | ((dy == 0) & (dx > 0)))
    assert len({tuple(d) for d in index.search_dst}) == 34
    # every offset within the radius appears as itself or as its mirror
    offsets = {(y, x) for y in range(-4, 5) for x in range(-4, 5)
               if 0 < y * y + x * x < 25}
    listed = {tuple(d) for d in index.search_dst}
    assert offsets == listed | {(-y, -x) for y, x in listed}
    # the source region is rows [0, 8) x columns [4, 10)
    assert index.src_indices.shape == (8 * 6,)
    assert index.src_indices[0] == 4 and index.src_indices[-1] == 7 * 14 + 9


def test_path_index_rejects_too_small_maps():
    with pytest.raises(ValueError):
        PathIndex(5, (10, 8))


# ------------------------------------------------------- edge_to_affinity
def test_edge_to_affinity_wall_cuts_the_pairs_that_touch_it():
    height, width, wall = 5, 8, 4
    edge = torch.zeros(1, height, width)
    edge[0, :, wall] = 1
    index = PathIndex(2, (height, width))
    affinity = edge_to_affinity(edge, index.path_indices)
    assert tuple(affinity.shape) == (1, 4, len(index.src_indices))
    src_x = index.src_indices % width
    dst_x = index.dst_indices % width
    touches = (np.minimum(src_x, dst_x) <= wall) & (
        np.maximum(src_x, dst_x) >= wall)
    np.testing.assert_array_equal(affinity[0].numpy(), 1.0 - touches)
    # sources at columns 1..6 on rows 0..3: per row, the horizontal pair
    # (3,4) and (4,5), the vertical pair at 4 and the diagonals (3,4),
    # (4,3), (4,5), (5,4) are cut: 7 per row
    assert int((affinity == 0).sum()) == 7 * 4
    # the same map with a channel axis gives the same result
    torch.testing.assert_close(
        edge_to_affinity(edge[:, None], index.path_indices), affinity)


def test_edge_to_affinity_is_one_minus_the_max_on_the_path():
    edge = torch.zeros(1, 4, 4, requires_grad=True)
    with torch.no_grad():
        edge[0, 1, 1] = 0.3     # flat index 5
        edge[0, 2, 0] = 0.8     # flat index 8
    index = PathIndex(2, (4, 4))
    affinity = edge_to_affinity(edge, index.path_indices)[0]
    # source 5 (column 2 of the sources) along (1, -1): path 8, 4, 9, 5
    assert affinity[2, 2].item() == pytest.approx(0.2)
    # source 5 along (0, 1) -> 6: only 5 is raised
    assert affinity[0, 2].item() == pytest.approx(0.7)
    # source 2 along (1, 1) -> 7: path 7, 3, 6, 2 sees no boundary
    assert affinity[3, 1].item() == 1.0
    affinity.sum().backward()
    # each of the 4 x 6 pairs sends -1 to one maximising pixel of its path
    assert edge.grad.sum().item() == -24
    assert edge.grad[0, 2, 0] < 0


# -------------------------------------------------------- affinity_labels
def test_affinity_labels_by_hand():
    labels = np.array([[0, 0, 1, 1],
                       [0, 255, 1, 1],
                       [0, 0, 0, 1]], np.uint8)
    index = PathIndex(2, (3, 4))
    # sources (0,1)=0, (0,2)=1, (1,1)=255, (1,2)=1;
    # channels (0,1), (1,0), (1,-1), (1,1)
    bg_pos, fg_pos, neg = affinity_labels(labels, index)
    assert bg_pos.dtype == torch.float32 and bg_pos.shape == (4, 4)
    expected_bg = np.zeros((4, 4))
    expected_bg[2, 0] = 1
    expected_fg = np.zeros((4, 4))
    expected_fg[[0, 1, 3], 1] = 1
    expected_fg[[0, 3], 3] = 1
    expected_neg = np.zeros((4, 4))
    expected_neg[[0, 3], 0] = 1
    expected_neg[[1, 2], 3] = 1
    np.testing.assert_array_equal(bg_pos.numpy(), expected_bg)
    np.testing.assert_array_equal(fg_pos.numpy(), expected_fg)
    np.testing.assert_array_equal(neg.numpy(), expected_neg)
    # the ignored pixel's four pairs and the two pairs reaching it are left
    assert int((bg_pos + fg_pos + neg).sum()) == 16 - 6


def test_affinity_labels_rejects_a_mismatched_map():
    with pytest.raises(ValueError, match='does not match'):
        affinity_labels(np.zeros((4, 4), np.uint8), PathIndex(2, (3, 4)))
