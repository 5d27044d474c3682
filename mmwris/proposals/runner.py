"""Resumable, atomic generation of per-image mask proposals."""
import json
import logging
import os
import os.path as osp
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from mmwris.utils.io import atomic_write_json
from .storage import (INDEX_FILE, PROPOSALS_SUBDIR, SUMMARY_FILE,
                      list_proposal_files, make_record, proposal_path,
                      read_proposal_file, write_image_proposals)

FORMAT_VERSION = 1


class ProposalSettingsError(RuntimeError):
    """An output folder holds proposals made with other settings."""


def images_from_refs(refs: Sequence[dict], images: Dict[int, dict],
                     img_dir: str,
                     splits: Optional[Sequence[str]] = None) -> List[dict]:
    """One entry per image of the refs of ``splits`` (all when None).

    Each entry is ``dict(image_id, file_name, img_path, height, width,
    sentences=[(sent_id, text)])`` where ``sentences`` are the expressions
    of *all* refs of the image (whatever their split), ordered by ref_id,
    with the text the dataset uses (``sent``, else ``raw``). Sorted by
    image_id.
    """
    by_image = defaultdict(list)
    for ref in sorted(refs, key=lambda r: r['ref_id']):
        by_image[ref['image_id']].append(ref)
    wanted = sorted({ref['image_id'] for ref in refs
                     if splits is None or ref['split'] in splits})
    entries = []
    for image_id in wanted:
        img = images.get(image_id)
        if img is None:
            raise KeyError(f'image_id={image_id} (ref_id='
                           f'{by_image[image_id][0]["ref_id"]}) is not in '
                           'the COCO instances file.')
        sentences = []
        for ref in by_image[image_id]:
            for sent in ref['sentences']:
                text = str(sent.get('sent', sent.get('raw', ''))).strip()
                sentences.append((sent['sent_id'], text))
        entries.append(dict(image_id=image_id, file_name=img['file_name'],
                            img_path=osp.join(img_dir, img['file_name']),
                            height=img['height'], width=img['width'],
                            sentences=sentences))
    return entries


def _normalised(obj):
    """JSON round trip: tuples become lists, keys strings."""
    return json.loads(json.dumps(obj))


class ProposalRunner:
    """Write ``out_dir/proposals/{image_id}.json`` for every image.

    For each image: backend proposals, the top ``top_n`` by score, and (with
    ``clip``) the CLIP similarity of each kept proposal with each expression
    of the image. Files are written under a temporary name and renamed;
    images whose file exists and parses are skipped, so an interrupted run
    restarts where it stopped (leftover temporary files are removed).
    ``index.json`` records the settings; running into a folder made with
    other settings raises :class:`ProposalSettingsError` unless
    ``overwrite`` (which deletes the old proposals first).

    Args:
        generator (callable): ``image [H, W, 3] -> (masks [M, H, W],
            scores [M])`` with a ``settings()`` method.
        out_dir (str): Output folder.
        images (list[dict]): From :func:`images_from_refs`.
        top_n (int): Proposals kept per image. Defaults to 40.
        clip (ProposalCLIPSimilarity, optional): Adds ``clip_sim``.
        clip_settings (dict, optional): What defines ``clip`` (arch,
            weights), stored in the settings.
        overwrite (bool): Replace proposals made with other settings.
        shard (tuple): ``(i, n)``: process images ``i::n`` only.
    """

    def __init__(self,
                 generator: Callable,
                 out_dir: str,
                 images: List[dict],
                 top_n: int = 40,
                 clip=None,
                 clip_settings: Optional[dict] = None,
                 overwrite: bool = False,
                 shard: Tuple[int, int] = (0, 1)) -> None:
        if top_n < 1:
            raise ValueError('top_n must be >= 1.')
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f'shard must be i/n with 0 <= i < n, got '
                             f'{index}/{count}.')
        self.generator = generator
        self.out_dir = out_dir
        self.images = images[index::count]
        self.top_n = top_n
        self.clip = clip
        self.overwrite = overwrite
        self.shard = (index, count)
        clip_part = None
        if clip is not None:
            clip_part = dict(clip_settings or {}, **clip.settings())
        self.settings = _normalised(dict(
            format=FORMAT_VERSION, backend=generator.settings(),
            top_n=top_n, clip=clip_part))

    @property
    def proposals_dir(self) -> str:
        return osp.join(self.out_dir, PROPOSALS_SUBDIR)

    def _prepare(self) -> None:
        """Create the folders, check the settings, drop temporary files."""
        os.makedirs(self.proposals_dir, exist_ok=True)
        index_path = osp.join(self.out_dir, INDEX_FILE)
        mine = {str(e['image_id']) for e in self.images}
        sharded = self.shard[1] > 1
        changes = settings_changes(index_path, self.settings)
        if changes is not None:
            if not self.overwrite:
                raise ProposalSettingsError(
                    f'{self.out_dir} holds proposals made with other '
                    f'settings ({index_path}):\n{changes}\nUse another '
                    'output folder, the same settings, or --overwrite '
                    '(deletes the existing proposals).')
            removed = 0
            for image_id in list_proposal_files(self.out_dir):
                if not sharded or image_id in mine:
                    os.remove(proposal_path(self.out_dir, image_id))
                    removed += 1
            print_log(f'--overwrite: deleted {removed} proposal files '
                      'made with other settings.', logger='current',
                      level=logging.WARNING)
        for folder in (self.proposals_dir, self.out_dir):
            for name in os.listdir(folder):
                if '.tmp-' not in name:
                    continue
                if not sharded or name.split('.json')[0] in mine:
                    os.remove(osp.join(folder, name))
        if not osp.isfile(index_path) or self.overwrite:
            self._write_index({})

    def _write_index(self, counts: Dict[str, int]) -> dict:
        """Index of every per-image file present (``counts`` of files
        already parsed; the others are read)."""
        images = {}
        for image_id, rel in sorted(list_proposal_files(self.out_dir).items(),
                                    key=lambda kv: _sort_key(kv[0])):
            count = counts.get(image_id)
            if count is None:
                try:
                    count = len(read_proposal_file(
                        osp.join(self.out_dir, rel))['masks'])
                except (ValueError, OSError):
                    continue
            images[image_id] = dict(file=rel, count=count)
        index = dict(settings=self.settings, images=images)
        atomic_write_json(osp.join(self.out_dir, INDEX_FILE), index,
                          indent=1)
        return index

    def _existing_count(self, image_id) -> Optional[int]:
        """Proposals in the image's file, or None when it must be (re)made."""
        path = proposal_path(self.out_dir, image_id)
        if not osp.isfile(path):
            return None
        try:
            record = read_proposal_file(path)
        except (ValueError, OSError) as e:
            print_log(f'{path} is unreadable ({e}); regenerating it.',
                      logger='current', level=logging.WARNING)
            return None
        if str(record['image_id']) != str(image_id):
            return None
        return len(record['masks'])

    def process(self, entry: dict) -> dict:
        """Proposals of one image entry -> its JSON record."""
        image = mmcv.imread(entry['img_path'], channel_order='rgb')
        if image is None:
            raise FileNotFoundError(f'cannot read image {entry["img_path"]}')
        if image.shape[:2] != (entry['height'], entry['width']):
            raise ValueError(
                f'image {entry["img_path"]} is {image.shape[:2]} (h, w) but '
                'the COCO file says '
                f'{(entry["height"], entry["width"])}.')
        masks, scores = self.generator(image)
        masks = np.asarray(masks)
        scores = np.asarray(scores, dtype=np.float32)
        if masks.shape[1:] != image.shape[:2] or len(scores) != len(masks):
            raise ValueError(f'the backend returned masks {masks.shape} and '
                             f'scores {scores.shape} for an image of size '
                             f'{image.shape[:2]}.')
        order = np.argsort(-scores, kind='stable')[:self.top_n]
        masks, scores = masks[order].astype(np.uint8), scores[order]
        clip_sim = None
        if self.clip is not None:
            sent_ids = [sent_id for sent_id, _ in entry['sentences']]
            texts = [text for _, text in entry['sentences']]
            sims = self.clip(image, masks, texts)
            clip_sim = {str(s): sims[:, t] for t, s in enumerate(sent_ids)}
        return make_record(entry['image_id'], entry['file_name'], masks,
                           scores, clip_sim)

    def run(self) -> dict:
        """Generate; return the summary (also written to summary.json)."""
        start = time.time()
        self._prepare()
        counts: Dict[str, int] = {}
        todo = []
        for entry in self.images:
            count = None if self.overwrite else self._existing_count(
                entry['image_id'])
            if count is None:
                todo.append(entry)
            else:
                counts[str(entry['image_id'])] = count
        skipped = len(counts)
        failures: Dict[str, str] = {}
        progress = ProgressBar(len(todo)) if todo else None
        for entry in todo:
            image_id = entry['image_id']
            try:
                record = self.process(entry)
                write_image_proposals(self.out_dir, record)
                counts[str(image_id)] = len(record['masks'])
            except Exception as e:
                failures[str(image_id)] = (
                    f'{entry["img_path"]}: {type(e).__name__}: {e}')
            if progress is not None:
                progress.update()
        if progress is not None:
            print()
        index = self._write_index(counts)
        present = [c['count'] for c in index['images'].values()]
        summary = dict(
            images=len(self.images), written=len(todo) - len(failures),
            skipped=skipped, failed=len(failures), present=len(present),
            mean_proposals=float(np.mean(present)) if present else 0.0,
            seconds=round(time.time() - start, 2), shard=list(self.shard),
            failures=failures)
        name = SUMMARY_FILE if self.shard[1] == 1 else \
            f'summary.shard{self.shard[0]}of{self.shard[1]}.json'
        atomic_write_json(osp.join(self.out_dir, name), summary, indent=1)
        print_log(
            f'proposals in {self.out_dir}: {summary["written"]} written, '
            f'{skipped} skipped (already there), {len(failures)} failed, '
            f'{len(present)} images present, '
            f'{summary["mean_proposals"]:.1f} proposals/image, '
            f'{summary["seconds"]:.1f} s', logger='current')
        for image_id, error in failures.items():
            print_log(f'image_id={image_id} failed: {error}',
                      logger='current', level=logging.ERROR)
        return summary


def settings_changes(index_path: str, settings: dict) -> Optional[str]:
    """None when the store indexed by ``index_path`` was made with
    ``settings`` (or has no index yet); else one line per difference."""
    if not osp.isfile(index_path):
        return None
    try:
        with open(index_path) as f:
            old = json.load(f).get('settings')
    except (json.JSONDecodeError, AttributeError):
        old = None
    if old == settings:
        return None
    return '\n'.join(f'  {key}: {there} there, {now} now'
                     for key, there, now in _differences(old, settings))


def _differences(old, new, prefix: str = '') -> List[tuple]:
    """``(dotted key, old value, new value)`` of every differing setting."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key),
                                f'{prefix}{key}.')
        return out
    if old == new:
        return []
    return [(prefix.rstrip('.') or 'settings', json.dumps(old),
             json.dumps(new))]


def _sort_key(image_id: str):
    return (0, int(image_id), '') if image_id.isdigit() else (1, 0, image_id)
