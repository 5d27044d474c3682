"""IRN (Ahn et al., CVPR 2019) as the TRIS pseudo-label refiner.

An inter-pixel relation network is trained over the seeds of a whole split,
then every seed map is propagated by a random walk over its affinities.
"""
from .instances import cluster_centroids, find_centroids, irn_foreground
from .net import AffinityDisplacementNet, IRNBackbone
from .path_index import PathIndex, affinity_labels, edge_to_affinity
from .refiner import IRNRefiner
from .seeds import irn_seed_labels, normalized_cam
from .train import IRNSeedDataset, load_irn, train_irn
from .walk import propagate_to_edge, to_transition_matrix

__all__ = [
    'PathIndex', 'edge_to_affinity', 'affinity_labels', 'propagate_to_edge',
    'to_transition_matrix', 'find_centroids', 'cluster_centroids',
    'irn_foreground', 'IRNBackbone', 'AffinityDisplacementNet',
    'IRNSeedDataset', 'train_irn', 'load_irn', 'irn_seed_labels',
    'normalized_cam', 'IRNRefiner'
]
