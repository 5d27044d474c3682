"""Load a precomputed SAM image embedding into a sample (PPT)."""
import os.path as osp

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmwris.proposals.sam_embeddings import (TOOL, embedding_key,
                                             embedding_path, read_embedding)
from mmwris.registry import TRANSFORMS

# The packed data field (a tensor [C, h, w], float16 as stored).
SAM_EMBEDDING = 'sam_embedding'


@TRANSFORMS.register_module()
class LoadSAMEmbedding(BaseTransform):
    """Read the sample's SAM image embedding from a store written by
    ``tools/precompute_sam_embeddings.py`` and set ``sam_embedding``
    (a float16 tensor ``[C, h, w]``, copied from a memory-mapped
    ``np.load``); ``PackRISInputs`` packs it as the data field
    ``data_sample.sam_embedding``.

    The store key is the ``image_id`` (``{image_id}_crop...`` for an
    instance crop, see :func:`embedding_key`). The embedding is of the
    *unflipped* original image (or crop), by default in ``FrozenSAM``'s
    frame (the whole image stretched to SAM's square; see
    :mod:`mmwris.proposals.sam_embeddings`), so it does not follow a flip
    or a crop of the pipeline: the transform refuses a sample that was
    flipped before it, and the pipeline must not flip or randomly crop
    after it (``Resize`` with ``keep_ratio=False`` is fine).

    Args:
        embedding_dir (str): The store (the tool's ``--out``).
        dtype (str): ``'float16'`` (as stored) or ``'float32'``. Defaults
            to ``'float16'``.
    """

    def __init__(self, embedding_dir: str, dtype: str = 'float16') -> None:
        if not embedding_dir:
            raise ValueError('LoadSAMEmbedding needs embedding_dir (the '
                             f'output folder of {TOOL}).')
        if dtype not in ('float16', 'float32'):
            raise ValueError(f"dtype must be 'float16' or 'float32', got "
                             f'{dtype!r}.')
        self.embedding_dir = embedding_dir
        self.dtype = dtype

    def transform(self, results: dict) -> dict:
        if results.get('flip'):
            raise ValueError(
                'LoadSAMEmbedding comes after a flip: the stored SAM '
                'embedding is of the unflipped image. Put it before any '
                'flip, and do not flip PPT samples.')
        key = embedding_key(results)
        path = embedding_path(self.embedding_dir, key)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'No SAM embedding for image_id={results.get("image_id")} '
                f'(image {results.get("img_path")}'
                + (f', crop {list(results["crop_bbox"])}'
                   if results.get('crop_bbox') is not None else '')
                + f') in the store {self.embedding_dir}: {path} does not '
                f'exist. Compute it with {TOOL} (a rerun skips the images '
                'already done), or fix embedding_dir.')
        array = read_embedding(path, mmap=True)
        results[SAM_EMBEDDING] = torch.from_numpy(
            np.array(array, dtype=self.dtype))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(embedding_dir='
                f'{self.embedding_dir!r}, dtype={self.dtype!r})')
