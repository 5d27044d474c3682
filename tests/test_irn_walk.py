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


# ---------------------------------------------------- to_transition_matrix
def test_transition_matrix_of_a_three_node_chain():
    from mmwris.pseudo_labels.irn.walk import to_transition_matrix
    affinity = torch.tensor([[1.0, 0.5, 0.0],
                             [0.5, 1.0, 0.5],
                             [0.0, 0.5, 1.0]], dtype=torch.float64)
    # column sums 1.5, 2, 1.5
    one_step = torch.tensor([[2 / 3, 1 / 4, 0],
                             [1 / 3, 1 / 2, 1 / 3],
                             [0, 1 / 4, 2 / 3]], dtype=torch.float64)
    torch.testing.assert_close(to_transition_matrix(affinity, 1, 0), one_step)
    two_steps = torch.tensor([[19 / 36, 7 / 24, 1 / 12],
                              [7 / 18, 5 / 12, 7 / 18],
                              [1 / 12, 7 / 24, 19 / 36]], dtype=torch.float64)
    torch.testing.assert_close(to_transition_matrix(affinity, 1, 1), two_steps)
    # beta = 2: 0.5 -> 0.25, first column 1 / 1.25, 0.25 / 1.25
    squared = to_transition_matrix(affinity, 2, 0)
    torch.testing.assert_close(squared[:, 0], torch.tensor(
        [0.8, 0.2, 0.0], dtype=torch.float64))
    four_steps = to_transition_matrix(affinity, 1, 2)
    torch.testing.assert_close(four_steps.sum(0),
                               torch.ones(3, dtype=torch.float64))
    # a constant row vector is a fixed point of y <- y T
    torch.testing.assert_close(torch.ones(1, 3, dtype=torch.float64)
                               @ four_steps,
                               torch.ones(1, 3, dtype=torch.float64))


# ------------------------------------------------------- propagate_to_edge
def _degrees(height, width, radius):
    """1 + the number of pixels of the map within ``radius`` of each pixel:
    the column sums of A^beta when there is no boundary."""
    ys, xs = np.mgrid[:height, :width]
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    near = ((ys[:, None] - ys[None]) ** 2
            + (xs[:, None] - xs[None]) ** 2) < radius ** 2
    return near.sum(0).reshape(height, width)


@pytest.mark.parametrize('method', ['dense', 'sparse'])
def test_propagate_two_pixels_by_hand(method):
    from mmwris.pseudo_labels.irn.walk import propagate_to_edge
    scores = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    edge = torch.tensor([[0.0, 0.5]], dtype=torch.float64)
    # a = 1 - 0.5, T = [[2/3, 1/3], [1/3, 2/3]]
    walked = propagate_to_edge(scores, edge, radius=2, beta=1, exp_times=0,
                               method=method)
    assert walked.shape == (1, 1, 1, 2)
    torch.testing.assert_close(walked.reshape(-1), torch.tensor(
        [2 / 3, 1 / 3], dtype=torch.float64))
    walked = propagate_to_edge(scores, edge, radius=2, beta=1, exp_times=1,
                               method=method)
    torch.testing.assert_close(walked.reshape(-1), torch.tensor(
        [5 / 9, 4 / 9], dtype=torch.float64))
    # the seed is masked by the boundary: a score on the edge pixel halves
    walked = propagate_to_edge(scores.flip(-1), edge, radius=2, beta=1,
                               exp_times=0, method=method)
    torch.testing.assert_close(walked.reshape(-1), torch.tensor(
        [1 / 6, 1 / 3], dtype=torch.float64))


@pytest.mark.parametrize('method', ['dense', 'sparse'])
def test_propagate_without_edges_spreads_symmetrically(method):
    from mmwris.pseudo_labels.irn.walk import propagate_to_edge
    size, radius = 11, 3
    scores = torch.zeros(1, size, size, dtype=torch.float64)
    scores[0, 5, 5] = 1
    edge = torch.zeros(size, size, dtype=torch.float64)
    walked = propagate_to_edge(scores, edge, radius=radius, beta=10,
                               exp_times=3, method=method)[0, 0]
    # symmetric under the flips and the transpose of the square
    torch.testing.assert_close(walked, walked.flip(0))
    torch.testing.assert_close(walked, walked.flip(1))
    torch.testing.assert_close(walked, walked.t())
    # 8 steps of reach 2 carry mass 16 pixels away; it peaks at the seed
    assert (walked > 0).all()
    assert walked.argmax().item() == 5 * size + 5
    assert torch.all(walked[5, 5:].diff() < 0)
    # y T with column-normalised T keeps the degree-weighted mass
    # sum_j d_j y_j (d = column sums of the symmetric A^beta), not sum_j y_j
    degrees = torch.from_numpy(_degrees(size, size, radius)).double()
    assert (degrees * walked).sum().item() == pytest.approx(
        degrees[5, 5].item())
    corner = torch.zeros_like(scores)
    corner[0, 0, 0] = 1
    walked = propagate_to_edge(corner, edge, radius=radius, beta=10,
                               exp_times=3, method=method)[0, 0]
    assert (degrees * walked).sum().item() == pytest.approx(
        degrees[0, 0].item())
    # the seed's plain mass drains towards the better connected interior
    assert walked.sum().item() < 0.5
    # and a constant map stays constant (every output is a weighted average)
    flat = propagate_to_edge(torch.ones_like(scores), edge, radius=radius,
                             beta=10, exp_times=3, method=method)
    torch.testing.assert_close(flat, torch.ones_like(flat))


@pytest.mark.parametrize('method', ['dense', 'sparse'])
def test_propagate_is_stopped_by_a_wall(method):
    from mmwris.pseudo_labels.irn.walk import propagate_to_edge
    scores = torch.zeros(2, 8, 12)
    scores[0, 3, 2] = 1
    scores[1, 6, 9] = 1
    edge = torch.zeros(8, 12)
    edge[:, 6] = 1
    walked = propagate_to_edge(scores, edge, method=method)[:, 0]
    assert (walked[0, :, :6] > 0).all()
    assert (walked[0, :, 6:] == 0).all()
    assert (walked[1, :, 7:] > 0).all()
    assert (walked[1, :, :7] == 0).all()


def test_propagate_dense_equals_sparse():
    from mmwris.pseudo_labels.irn.walk import propagate_to_edge
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(3, 10, 12, generator=generator, dtype=torch.float64)
    edge = torch.rand(10, 12, generator=generator, dtype=torch.float64) ** 3
    dense = propagate_to_edge(scores, edge, radius=5, method='dense')
    sparse = propagate_to_edge(scores, edge, radius=5, method='sparse')
    assert dense.shape == (3, 1, 10, 12)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-10)
    # float32: 256 products in a row against 8 squarings, both rounded
    dense32 = propagate_to_edge(scores.float(), edge.float(), method='dense')
    sparse32 = propagate_to_edge(scores.float(), edge.float(),
                                 method='sparse')
    torch.testing.assert_close(sparse32, dense.float(), rtol=0, atol=1e-4)
    torch.testing.assert_close(dense32, dense.float(), rtol=0, atol=1e-4)
    # small maps go the dense way
    assert torch.equal(propagate_to_edge(scores, edge, method='auto'), dense)
    with pytest.raises(ValueError):
        propagate_to_edge(scores, edge, method='cholesky')


# --------------------------------------------------------- find_centroids
def test_find_centroids_constant_field_runs_into_the_corner():
    from mmwris.pseudo_labels.irn.instances import find_centroids
    displacement = np.stack([np.full((5, 6), 1.0), np.full((5, 6), -2.0)])
    centroids = find_centroids(displacement.astype(np.float32))
    assert centroids.dtype == np.int32 and centroids.shape == (2, 5, 6)
    assert (centroids[0] == 4).all() and (centroids[1] == 0).all()


def test_find_centroids_converge_to_the_attractor():
    from mmwris.pseudo_labels.irn.instances import find_centroids
    ys, xs = np.mgrid[:9, :11]
    displacement = 0.5 * np.stack([4 - ys, 5 - xs]).astype(np.float32)
    centroids = find_centroids(displacement)
    assert (centroids[0] == 4).all() and (centroids[1] == 5).all()


def test_find_centroids_looks_up_bilinearly():
    from mmwris.pseudo_labels.irn.instances import find_centroids
    displacement = np.zeros((2, 3, 3), np.float32)
    displacement[1, 0, 0] = 0.5
    displacement[1, 0, 1] = 2.1
    # (0, 0) -> (0, 0.5) -> (0, 0.5 + (0.5 + 2.1) / 2) = (0, 1.8) -> 2;
    # the floor corner alone would give 1, the ceil corner 3
    centroids = find_centroids(displacement, iterations=2)
    assert tuple(centroids[:, 0, 0]) == (0, 2)


# ------------------------------------------------------ cluster_centroids
def test_cluster_centroids_two_attractors():
    from mmwris.pseudo_labels.irn.instances import (cluster_centroids,
                                                     find_centroids)
    ys, xs = np.mgrid[:10, :20]
    left = xs < 10
    displacement = np.stack([5 - ys, np.where(left, 4, 15) - xs])
    displacement = displacement.astype(np.float32)
    instances = cluster_centroids(find_centroids(displacement), displacement)
    assert instances.shape == (2, 10, 20)
    assert (instances.sum(0) == 1).all()
    # numbered by component, the left one is found first
    np.testing.assert_array_equal(instances[0], left)
    np.testing.assert_array_equal(instances[1], ~left)


def test_cluster_centroids_without_still_region_is_one_instance():
    from mmwris.pseudo_labels.irn.instances import (cluster_centroids,
                                                     find_centroids)
    displacement = np.zeros((2, 4, 5), np.float32)
    displacement[1] = 3.0
    instances = cluster_centroids(find_centroids(displacement), displacement)
    assert instances.shape == (1, 4, 5) and instances.all()


# --------------------------------------------------------- irn_foreground
def _left_blob_cam(size=32):
    ys, xs = np.mgrid[:size, :size]
    cam = np.exp(-((ys - 16) ** 2 + (xs - 6) ** 2) / 8.0)
    return torch.from_numpy(cam.astype(np.float32))


def test_irn_foreground_stays_on_its_side_of_the_edge():
    from mmwris.pseudo_labels.irn.instances import irn_foreground
    cam = _left_blob_cam()
    edge = torch.zeros(8, 8)
    edge[:, 4] = 1                    # image columns 16..19
    displacement = np.zeros((2, 8, 8), np.float32)
    mask = irn_foreground(cam, edge, displacement)
    assert mask.dtype == bool and mask.shape == (32, 32)
    assert mask[cam > 0.5].all()      # the blob
    assert mask[:, :14].all()         # walked over the whole left region
    assert not mask[:, 18:].any()     # nothing behind the edge
    # without the edge the walk crosses over
    open_mask = irn_foreground(cam, torch.zeros(8, 8), displacement)
    assert open_mask[:, 18:].any()
    sparse = irn_foreground(cam, edge, torch.from_numpy(displacement),
                            method='sparse')
    np.testing.assert_array_equal(sparse, mask)


def test_irn_foreground_crops_to_the_image_size():
    from mmwris.pseudo_labels.irn.instances import irn_foreground
    cam = _left_blob_cam()[:30, :29]
    mask = irn_foreground(cam, torch.zeros(8, 8), np.zeros((2, 8, 8)))
    assert mask.shape == (30, 29)


def test_irn_foreground_of_an_empty_cam_is_empty():
    from mmwris.pseudo_labels.irn.instances import irn_foreground
    mask = irn_foreground(torch.zeros(32, 32), torch.rand(8, 8),
                          np.zeros((2, 8, 8), np.float32))
    assert mask.shape == (32, 32) and not mask.any()
