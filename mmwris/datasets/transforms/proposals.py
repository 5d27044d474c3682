from collections import OrderedDict
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmwris.proposals.storage import (TOOL, decode_masks, proposal_path,
                                      read_proposal_file)
from mmwris.registry import TRANSFORMS

# cv2 (used by mmcv's resize) handles at most 512 channels.
MAX_PROPOSALS = 512


def channels_last_masks(masks: np.ndarray, channels: int) -> np.ndarray:
    """``[M, H, W]`` masks -> uint8 ``[H, W, channels]`` (padded with empty
    masks), the layout of an image's seg fields. ``cv2.merge`` interleaves
    the planes about 4x faster than a numpy transpose copy (benchmarks/
    heavy_inputs.py)."""
    height, width = masks.shape[1:]
    empty = np.zeros((height, width), np.uint8)
    planes = [np.ascontiguousarray(m, dtype=np.uint8) for m in masks]
    planes += [empty] * (channels - len(planes))
    if channels == 1:
        return planes[0][..., None]
    return cv2.merge(planes)


@TRANSFORMS.register_module()
class LoadProposals(BaseTransform):
    """Load an image's class-agnostic mask proposals (PCNet).

    Reads ``{proposal_dir}/proposals/{image_id}.json`` (written by
    ``tools/generate_proposals.py``), decodes the RLEs at the original
    image size and sets ``gt_proposals`` = uint8 ``[H, W, N]`` (0/1,
    ``N = num_proposals``: the best-scored proposals, padded with empty
    masks), added to ``seg_fields`` so that ``Resize`` and
    ``RandomFlipWithText`` move it with the image (placed after
    ``Resize``, as test pipelines load GT, it stays at the original size).
    Also sets ``proposal_scores`` (N floats, padded with 0) and, with
    ``with_clip_sim``, ``proposal_clip_sim`` (the CLIP similarity of each
    proposal with the sample's expression ``sent_id``, padded with -1).
    ``PackRISInputs`` packs them.

    The folder is ``proposal_dir`` if given (a full path or relative to the
    working directory), else the sample's ``proposal_dir`` (set by
    ``RefCOCODataset(proposal_dir=...)``, relative to its ``data_root``).
    A small LRU cache keeps the last ``cache_size`` parsed files (RLE text
    only, no decoded masks).

    Required keys: ``image_id``, ``height``, ``width`` (and ``sent_id`` with
    ``with_clip_sim``).

    Args:
        proposal_dir (str, optional): Output folder of the proposal tool;
            None takes the dataset's. Defaults to None.
        num_proposals (int): Channels N. Defaults to 40.
        with_clip_sim (bool): Also load the CLIP similarities. Defaults
            to True.
        cache_size (int): Parsed files kept. Defaults to 8.
    """

    def __init__(self,
                 proposal_dir: Optional[str] = None,
                 num_proposals: int = 40,
                 with_clip_sim: bool = True,
                 cache_size: int = 8) -> None:
        if not 1 <= num_proposals <= MAX_PROPOSALS:
            raise ValueError(f'num_proposals must be in [1, {MAX_PROPOSALS}]'
                             f' (the most channels cv2 resizes), got '
                             f'{num_proposals}.')
        self.proposal_dir = proposal_dir
        self.num_proposals = num_proposals
        self.with_clip_sim = with_clip_sim
        self.cache_size = cache_size
        self._cache = OrderedDict()

    def _read(self, image_id, folder: str) -> tuple:
        """The parsed file of ``image_id`` and its path (LRU cached)."""
        path = proposal_path(folder, image_id)
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path], path
        try:
            record = read_proposal_file(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f'No proposals for image_id={image_id}: {path} does not '
                f'exist in {folder}. Generate them with {TOOL} '
                '(or fix the proposal_dir).') from None
        if self.cache_size > 0:
            self._cache[path] = record
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return record, path

    def transform(self, results: dict) -> dict:
        folder = self.proposal_dir or results.get('proposal_dir')
        if folder is None:
            raise KeyError(
                'LoadProposals has no proposal folder: set '
                'LoadProposals(proposal_dir=...) or the dataset\'s '
                f'proposal_dir (image_id={results.get("image_id")}).')
        record, path = self._read(results['image_id'], folder)
        height, width = results['height'], results['width']
        if (record['height'], record['width']) != (height, width):
            raise ValueError(
                f'{path} holds proposals of size {record["height"]}x'
                f'{record["width"]}, but image_id={results["image_id"]} is '
                f'{height}x{width} (h x w).')
        n = self.num_proposals
        kept = decode_masks(record['masks'][:n], height, width, source=path)
        results['gt_proposals'] = channels_last_masks(kept, n)
        results.setdefault('seg_fields', [])
        if 'gt_proposals' not in results['seg_fields']:
            results['seg_fields'].append('gt_proposals')
        scores = [float(s) for s in record['scores'][:n]]
        results['proposal_scores'] = scores + [0.0] * (n - len(scores))
        if self.with_clip_sim:
            results['proposal_clip_sim'] = self._clip_sim(
                record, path, results.get('sent_id'))
        return results

    def _clip_sim(self, record: dict, path: str, sent_id) -> list:
        if record['clip_sim'] is None:
            raise KeyError(f'{path} has no CLIP similarities (made with '
                           '--no-clip); regenerate it with CLIP or set '
                           'with_clip_sim=False.')
        sims = record['clip_sim'].get(str(sent_id))
        if sims is None:
            raise KeyError(f'sent_id={sent_id} has no CLIP similarities in '
                           f'{path} (it has sent_ids '
                           f'{sorted(record["clip_sim"])}).')
        sims = [float(s) for s in sims[:self.num_proposals]]
        return sims + [-1.0] * (self.num_proposals - len(sims))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(proposal_dir={self.proposal_dir!r}, '
                f'num_proposals={self.num_proposals}, '
                f'with_clip_sim={self.with_clip_sim})')
