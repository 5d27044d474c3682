"""IRN (Ahn et al., CVPR 2019) as the TRIS pseudo-label refiner.

An inter-pixel relation network is trained over the seeds of a whole split,
then every seed map is propagated by a random walk over its affinities.
"""
