"""Reading and writing mask proposals.

Layout of a proposal folder ``OUT`` (written by
``tools/generate_proposals.py``)::

    OUT/proposals/{image_id}.json   # one per image, see below
    OUT/index.json                  # settings + image_id -> file, count
    OUT/summary.json                # the last run's summary

A per-image file holds ``{"image_id", "file_name", "height", "width",
"masks": [COCO RLE, "counts" as str], "scores": [M floats],
"clip_sim": {"<sent_id>": [M floats]} or null}``, proposals sorted by
decreasing score.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Union

import numpy as np
from pycocotools import mask as mask_utils

from mmwris.utils.io import atomic_write_json

PROPOSALS_SUBDIR = 'proposals'
INDEX_FILE = 'index.json'
SUMMARY_FILE = 'summary.json'
RECORD_KEYS = ('image_id', 'file_name', 'height', 'width', 'masks', 'scores',
               'clip_sim')
TOOL = 'tools/generate_proposals.py'


def proposal_path(out_dir: str, image_id: Union[int, str]) -> str:
    """Path of the per-image proposal file of ``image_id``."""
    return osp.join(out_dir, PROPOSALS_SUBDIR, f'{image_id}.json')


def encode_masks(masks: np.ndarray) -> List[dict]:
    """Binary masks ``[M, H, W]`` -> M COCO RLEs with ``counts`` as str."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f'masks must be [M, H, W], got {masks.shape}.')
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(
        np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [dict(size=[int(s) for s in rle['size']],
                 counts=rle['counts'].decode('ascii')) for rle in rles]


def decode_masks(rles: Sequence[dict], height: int, width: int,
                 source: str = 'proposal record') -> np.ndarray:
    """M COCO RLEs -> uint8 ``[M, height, width]`` (0/1).

    Raises ``ValueError`` naming ``source`` when an RLE has another size.
    """
    if not rles:
        return np.zeros((0, height, width), np.uint8)
    coded = []
    for i, rle in enumerate(rles):
        if list(rle.get('size', ())) != [height, width]:
            raise ValueError(f'{source}: mask {i} has size '
                             f'{rle.get("size")}, expected {[height, width]}.')
        counts = rle['counts']
        coded.append(dict(size=rle['size'], counts=counts.encode('ascii')
                          if isinstance(counts, str) else counts))
    return np.ascontiguousarray(
        mask_utils.decode(coded).transpose(2, 0, 1)).astype(np.uint8,
                                                         copy=False)


def make_record(image_id: int, file_name: str, masks: np.ndarray,
                scores: Sequence[float],
                clip_sim: Union[Dict[str, Sequence[float]], None]) -> dict:
    """The JSON record of one image (floats rounded to 6 decimals)."""
    height, width = masks.shape[1:]
    if len(scores) != len(masks):
        raise ValueError(f'{len(masks)} masks but {len(scores)} scores.')
    sims = None
    if clip_sim is not None:
        sims = {}
        for sent_id, values in clip_sim.items():
            if len(values) != len(masks):
                raise ValueError(f'sent_id {sent_id}: {len(values)} CLIP '
                                 f'similarities for {len(masks)} masks.')
            sims[str(sent_id)] = [round(float(v), 6) for v in values]
    return dict(image_id=image_id, file_name=file_name, height=int(height),
                width=int(width), masks=encode_masks(masks),
                scores=[round(float(s), 6) for s in scores], clip_sim=sims)


def write_image_proposals(out_dir: str, record: dict) -> str:
    """Write one image's record atomically; return its path."""
    path = proposal_path(out_dir, record['image_id'])
    atomic_write_json(path, record, separators=(',', ':'))
    return path


def read_proposal_file(path: str) -> dict:
    """Parse and check a per-image proposal file.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Naming the file when it is not JSON or lacks keys.
    """
    try:
        with open(path) as f:
            record = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'Proposal file {path} is corrupt (not JSON: {e}); '
                         f'delete it and run {TOOL} again.') from e
    if not isinstance(record, dict):
        raise ValueError(f'Proposal file {path} is not a JSON object.')
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f'Proposal file {path} lacks the keys {missing}.')
    if len(record['scores']) != len(record['masks']):
        raise ValueError(f'Proposal file {path} has {len(record["masks"])} '
                         f'masks but {len(record["scores"])} scores.')
    return record


def load_image_proposals(out_dir: str, image_id: Union[int, str],
                         decode: bool = False) -> dict:
    """Read the proposals of ``image_id`` from the folder ``out_dir``.

    Args:
        out_dir (str): A folder written by ``tools/generate_proposals.py``.
        image_id (int | str): The image.
        decode (bool): Also decode the RLEs into ``record['mask_array']``,
            uint8 ``[M, height, width]``. Defaults to False.

    Returns:
        dict: The record (see the module docstring).
    """
    path = proposal_path(out_dir, image_id)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'No proposals for image_id={image_id} in {out_dir} ({path} '
            f'does not exist); generate them with {TOOL}.')
    record = read_proposal_file(path)
    if str(record['image_id']) != str(image_id):
        raise ValueError(f'Proposal file {path} holds image_id='
                         f'{record["image_id"]}, not {image_id}.')
    if decode:
        record['mask_array'] = decode_masks(record['masks'], record['height'],
                                            record['width'], source=path)
    return record


def load_index(out_dir: str) -> dict:
    """Read ``out_dir/index.json``: ``{"settings", "images": {image_id:
    {"file", "count"}}}``."""
    path = osp.join(out_dir, INDEX_FILE)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist; generate the '
                                f'proposals with {TOOL}.')
    try:
        with open(path) as f:
            index = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'Proposal index {path} is corrupt: {e}') from e
    if not isinstance(index, dict) or 'settings' not in index:
        raise ValueError(f'Proposal index {path} has no "settings".')
    index.setdefault('images', {})
    return index


def list_proposal_files(out_dir: str) -> Dict[str, str]:
    """``image_id`` (str) -> relative path of every per-image file."""
    folder = osp.join(out_dir, PROPOSALS_SUBDIR)
    if not osp.isdir(folder):
        return {}
    return {name[:-len('.json')]: f'{PROPOSALS_SUBDIR}/{name}'
            for name in sorted(os.listdir(folder))
            if name.endswith('.json')}
