"""Offline SAM image embeddings (PPT): one ``.npy`` file per image.

Layout of an embedding store ``OUT`` (written by
``tools/precompute_sam_embeddings.py``)::

    OUT/embeddings/{key}.npy   # float16 [C, h, w], plain .npy (no pickle)
    OUT/index.json             # settings + key -> file
    OUT/summary.json           # the last run's summary (one per shard)

``key`` is the sample's ``image_id``, or ``{image_id}_crop{x0}-{y0}-{x1}-
{y1}`` for an instance crop (``crop_bbox``, ``ClassInstanceDataset(mode=
'crop')``), so a store made with another crop margin cannot be read by
mistake. The embedding is SAM's ``image_encoder`` output for the image (or
crop), by default in the frame of the PPT model's ``FrozenSAM``: the whole
image resized to SAM's ``image_size`` square (``preprocess='stretch'``;
with ``input_size`` via the network input size, which makes it equal to
what ``FrozenSAM`` computes on the fly), so a point ``(u, v)`` normalised
over the image is ``(u, v)`` over the embedding grid.
``preprocess='longest_side'`` is ``SamPredictor``'s frame instead. The
settings (arch, checkpoint, preprocessing, shape) are in ``index.json``.

Writing follows :class:`ProposalRunner`: files are written under a
temporary name and renamed, finished files are skipped on a rerun,
``index.json`` keeps the settings and a folder made with other settings is
refused unless ``overwrite``.
"""
import io
import json
import logging
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from mmwris.models.foundation.sam import ArchType, build_sam, sam_settings
from mmwris.utils.io import atomic_write_bytes, atomic_write_json
from .runner import ProposalSettingsError, _normalised, settings_changes, \
    _sort_key

EMBEDDINGS_SUBDIR = 'embeddings'
INDEX_FILE = 'index.json'
SUMMARY_FILE = 'summary.json'
TOOL = 'tools/precompute_sam_embeddings.py'
FORMAT_VERSION = 1
STORAGE_DTYPE = np.float16


class EmbeddingSettingsError(ProposalSettingsError):
    """An embedding store holds embeddings made with other settings."""


# -- keys and files ------------------------------------------------------
def embedding_key(info: dict) -> str:
    """The store key of a sample (data info or pipeline results)."""
    if info.get('image_id') is None:
        raise KeyError('A SAM embedding is keyed by the sample\'s image_id, '
                       f'which is missing (image {info.get("img_path")}).')
    key = str(info['image_id'])
    box = info.get('crop_bbox')
    if box is not None:
        key += '_crop' + '-'.join(str(int(v)) for v in box)
    if '/' in key or osp.sep in key or key.startswith('.'):
        raise ValueError(f'image_id {info["image_id"]!r} cannot be a file '
                         'name.')
    return key


def embedding_path(store: str, key: str) -> str:
    return osp.join(store, EMBEDDINGS_SUBDIR, f'{key}.npy')


def write_embedding(store: str, key: str, embedding: np.ndarray) -> str:
    """Write one embedding ``[C, h, w]`` as float16 ``.npy``, atomically."""
    embedding = np.asarray(embedding)
    if embedding.ndim != 3:
        raise ValueError(f'an embedding is [C, h, w], got {embedding.shape}.')
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(embedding.astype(STORAGE_DTYPE)),
            allow_pickle=False)
    path = embedding_path(store, key)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_embedding(path: str, mmap: bool = True) -> np.ndarray:
    """A stored embedding (memory-mapped, read-only, by default).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Naming the file when it is not a 3-d float ``.npy``.
    """
    try:
        array = np.load(path, mmap_mode='r' if mmap else None,
                        allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f'SAM embedding {path} is corrupt ({e}); delete it '
                         f'and run {TOOL} again.') from e
    if array.ndim != 3 or array.dtype.kind != 'f':
        raise ValueError(f'SAM embedding {path} holds {array.dtype} '
                         f'{array.shape}, not a float [C, h, w] array.')
    return array


def list_embedding_files(store: str) -> Dict[str, str]:
    """``key`` -> relative path of every embedding file."""
    folder = osp.join(store, EMBEDDINGS_SUBDIR)
    if not osp.isdir(folder):
        return {}
    return {name[:-len('.npy')]: f'{EMBEDDINGS_SUBDIR}/{name}'
            for name in sorted(os.listdir(folder))
            if name.endswith('.npy') and '.tmp-' not in name}


def load_embedding_index(store: str) -> dict:
    """Read ``store/index.json``: ``{"settings", "items": {key: file}}``."""
    path = osp.join(store, INDEX_FILE)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist; compute the SAM '
                                f'embeddings with {TOOL}.')
    try:
        with open(path) as f:
            index = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'SAM embedding index {path} is corrupt: {e}') from e
    if not isinstance(index, dict) or 'settings' not in index:
        raise ValueError(f'SAM embedding index {path} has no "settings".')
    index.setdefault('items', {})
    return index


# -- what to embed -------------------------------------------------------
def embedding_items(dataset, sources: Optional[Sequence[str]] = None
                    ) -> List[dict]:
    """The distinct images (or crops) of a dataset: ``dict(key, img_path,
    crop_bbox)``, sorted by key. A ``CurriculumDataset`` gives those of its
    ``sources`` (all by default).

    Raises ``ValueError`` when one key names two different files.
    """
    datasets = [dataset]
    if hasattr(dataset, 'names') and hasattr(dataset, 'datasets'):
        unknown = sorted(set(sources or ()) - set(dataset.names))
        if unknown:
            raise KeyError(f'Unknown sources {unknown}; the sources are '
                           f'{dataset.names}.')
        datasets = [d for n, d in zip(dataset.names, dataset.datasets)
                    if not sources or n in sources]
    items: Dict[str, dict] = {}
    for ds in datasets:
        ds.full_init()
        for idx in range(len(ds)):
            info = ds.get_data_info(idx)
            key = embedding_key(info)
            item = dict(key=key, img_path=info['img_path'],
                        crop_bbox=info.get('crop_bbox'))
            old = items.setdefault(key, item)
            if old['img_path'] != item['img_path']:
                raise ValueError(
                    f'The key {key} (image_id) names two images: '
                    f'{old["img_path"]} and {item["img_path"]}; write them '
                    'to separate stores.')
    return [items[k] for k in sorted(items, key=_sort_key)]


# -- the encoder ---------------------------------------------------------
class SAMImageEncoder:
    """SAM's image encoder on RGB uint8 images.

    Preprocessing (``preprocess``):

    * ``'stretch'`` (default): the frame of the PPT model's ``FrozenSAM``
      (the network input resized to SAM's ``image_size`` square, aspect
      ratio not kept). With ``input_size=(w, h)`` the image is first
      resized to the network input as the pipeline's ``Resize(scale=(w,
      h), keep_ratio=False)`` does (cv2 bilinear, uint8), then bilinearly
      to the square as ``FrozenSAM.preprocess`` does, so the stored
      embedding equals the one the model would compute (up to float16).
      Without it the original image is resized to the square directly
      (sharper, not bit-equal).
    * ``'longest_side'``: ``SamPredictor``'s frame (longest side to
      ``image_size``, padded bottom-right).

    Args:
        arch (str | dict): SAM architecture (see :func:`build_sam`).
        checkpoint (str): Local SAM weights, loaded strictly.
        preprocess (str): ``'stretch'`` or ``'longest_side'``.
        input_size (tuple[int, int], optional): ``(w, h)`` of the network
            input (``'stretch'`` only).
        device (str): Defaults to ``'cpu'``.
    """
    PREPROCESS = ('stretch', 'longest_side')

    def __init__(self, arch: ArchType, checkpoint: str,
                 preprocess: str = 'stretch',
                 input_size: Optional[Sequence[int]] = None,
                 device: str = 'cpu') -> None:
        from segment_anything.utils.transforms import ResizeLongestSide
        if preprocess not in self.PREPROCESS:
            raise ValueError(f'preprocess must be one of {self.PREPROCESS}, '
                             f'got {preprocess!r}.')
        if input_size is not None:
            input_size = tuple(int(v) for v in input_size)
            if preprocess != 'stretch' or len(input_size) != 2 \
                    or min(input_size) < 1:
                raise ValueError('input_size is (w, h) > 0 of the network '
                                 "input, for preprocess='stretch'; got "
                                 f'{input_size} with {preprocess!r}.')
        self.arch = arch
        self.checkpoint = checkpoint
        self.preprocess_mode = preprocess
        self.input_size = input_size
        self.model = build_sam(arch, checkpoint).to(device).eval()
        self.device = device
        settings = sam_settings(arch)
        self.image_size = settings['image_size']
        self.shape = (settings['prompt_embed_dim'],
                      settings['image_size'] // settings['patch_size'],
                      settings['image_size'] // settings['patch_size'])
        self.resize = ResizeLongestSide(self.image_size)

    def settings(self) -> dict:
        return dict(arch=self.arch, checkpoint=osp.abspath(self.checkpoint),
                    image_size=self.image_size, shape=list(self.shape),
                    preprocess=self.preprocess_mode,
                    input_size=self.input_size,
                    dtype=np.dtype(STORAGE_DTYPE).name)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``[H, W, 3]`` -> SAM input ``[3, S, S]``."""
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8
                and image.ndim == 3 and image.shape[2] == 3):
            raise ValueError('SAM embeds RGB uint8 [H, W, 3] images, got '
                             f'{getattr(image, "dtype", None)} '
                             f'{getattr(image, "shape", None)}.')
        sam = self.model
        if self.preprocess_mode == 'longest_side':
            resized = self.resize.apply_image(image)
            tensor = torch.as_tensor(resized, device=self.device).permute(
                2, 0, 1).contiguous()
            return sam.preprocess(tensor[None].float())[0]
        if self.input_size is not None:
            image = mmcv.imresize(image, self.input_size,
                                  interpolation='bilinear', backend='cv2')
        unit = torch.as_tensor(image, device=self.device).permute(
            2, 0, 1)[None].float() / 255.0
        size = (self.image_size, self.image_size)
        if tuple(unit.shape[-2:]) != size:
            unit = F.interpolate(unit, size=size, mode='bilinear',
                                 align_corners=False)
        return ((unit * 255.0 - sam.pixel_mean) / sam.pixel_std)[0]

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Images -> float16 embeddings ``[B, C, h, w]``."""
        batch = torch.stack([self.preprocess(img) for img in images])
        features = self.model.image_encoder(batch)
        return features.float().cpu().numpy().astype(STORAGE_DTYPE)


def read_item_image(item: dict) -> np.ndarray:
    """The RGB image (or crop) of an item."""
    image = mmcv.imread(item['img_path'], channel_order='rgb')
    if image is None:
        raise FileNotFoundError(f'cannot read image {item["img_path"]}')
    box = item.get('crop_bbox')
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        if not (0 <= x0 < x1 <= image.shape[1]
                and 0 <= y0 < y1 <= image.shape[0]):
            raise ValueError(f'crop_bbox {box} is outside the '
                             f'{image.shape[1]}x{image.shape[0]} image '
                             f'{item["img_path"]}.')
        image = np.ascontiguousarray(image[y0:y1, x0:x1])
    return image


class EmbeddingRunner:
    """Write ``out_dir/embeddings/{key}.npy`` for every item.

    Args:
        encoder (callable): ``list of RGB images -> [B, C, h, w]`` with a
            ``settings()`` method (:class:`SAMImageEncoder`).
        out_dir (str): The store.
        items (list[dict]): From :func:`embedding_items`.
        batch_size (int): Images per encoder call. Defaults to 1.
        overwrite (bool): Replace embeddings made with other settings.
        shard (tuple): ``(i, n)``: process items ``i::n`` only.
        progress (bool): Show a progress bar. Defaults to True.
    """

    def __init__(self, encoder, out_dir: str, items: List[dict],
                 batch_size: int = 1, overwrite: bool = False,
                 shard: Tuple[int, int] = (0, 1),
                 progress: bool = True) -> None:
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f'shard must be i/n with 0 <= i < n, got '
                             f'{index}/{count}.')
        if batch_size < 1:
            raise ValueError('batch_size must be >= 1.')
        self.encoder = encoder
        self.out_dir = out_dir
        self.items = items[index::count]
        self.batch_size = batch_size
        self.overwrite = overwrite
        self.shard = (index, count)
        self.progress = progress
        self.settings = _normalised(dict(format=FORMAT_VERSION,
                                         **encoder.settings()))
        self.shape = tuple(self.settings.get('shape') or ()) or None

    @property
    def index_path(self) -> str:
        return osp.join(self.out_dir, INDEX_FILE)

    def _prepare(self) -> None:
        folder = osp.join(self.out_dir, EMBEDDINGS_SUBDIR)
        os.makedirs(folder, exist_ok=True)
        mine = {item['key'] for item in self.items}
        sharded = self.shard[1] > 1
        changes = settings_changes(self.index_path, self.settings)
        if changes is not None:
            if not self.overwrite:
                raise EmbeddingSettingsError(
                    f'{self.out_dir} holds SAM embeddings made with '
                    f'other settings ({self.index_path}):\n{changes}\n'
                    'Use another output folder, the same settings, or '
                    '--overwrite (deletes the existing embeddings).')
            removed = 0
            for key in list_embedding_files(self.out_dir):
                if not sharded or key in mine:
                    os.remove(embedding_path(self.out_dir, key))
                    removed += 1
            print_log(f'--overwrite: deleted {removed} embeddings made '
                      'with other settings.', logger='current',
                      level=logging.WARNING)
        for name in os.listdir(folder):
            if '.tmp-' in name and (not sharded
                                    or name.split('.npy')[0] in mine):
                os.remove(osp.join(folder, name))
        if not osp.isfile(self.index_path) or self.overwrite:
            self._write_index()

    def _write_index(self) -> dict:
        items = {key: rel for key, rel in sorted(
            list_embedding_files(self.out_dir).items(),
            key=lambda kv: _sort_key(kv[0]))}
        index = dict(settings=self.settings, items=items)
        atomic_write_json(self.index_path, index, indent=1)
        return index

    def _done(self, key: str) -> bool:
        """Whether the item's file exists and has the expected shape."""
        path = embedding_path(self.out_dir, key)
        if not osp.isfile(path):
            return False
        try:
            array = read_embedding(path)
        except (ValueError, OSError) as e:
            print_log(f'{path} is unreadable ({e}); recomputing it.',
                      logger='current', level=logging.WARNING)
            return False
        return self.shape is None or tuple(array.shape) == self.shape

    def _flush(self, batch: List[Tuple[dict, np.ndarray]],
               failures: Dict[str, str]) -> int:
        if not batch:
            return 0
        try:
            embeddings = self.encoder([image for _, image in batch])
        except Exception as e:
            for item, _ in batch:
                failures[item['key']] = (f'{item["img_path"]}: '
                                         f'{type(e).__name__}: {e}')
            return 0
        for (item, _), embedding in zip(batch, embeddings):
            write_embedding(self.out_dir, item['key'], embedding)
        return len(batch)

    def run(self) -> dict:
        """Compute; return the summary (also written to summary.json)."""
        start = time.time()
        self._prepare()
        todo = [item for item in self.items
                if self.overwrite or not self._done(item['key'])]
        skipped = len(self.items) - len(todo)
        failures: Dict[str, str] = {}
        written = 0
        progress = ProgressBar(len(todo)) \
            if todo and self.progress else None
        batch: List[Tuple[dict, np.ndarray]] = []
        for item in todo:
            try:
                batch.append((item, read_item_image(item)))
            except Exception as e:
                failures[item['key']] = (f'{item["img_path"]}: '
                                         f'{type(e).__name__}: {e}')
            if len(batch) == self.batch_size:
                written += self._flush(batch, failures)
                batch = []
            if progress is not None:
                progress.update()
        written += self._flush(batch, failures)
        if progress is not None:
            print()
        index = self._write_index()
        summary = dict(
            items=len(self.items), written=written, skipped=skipped,
            failed=len(failures), present=len(index['items']),
            seconds=round(time.time() - start, 2), shard=list(self.shard),
            failures=failures)
        name = SUMMARY_FILE if self.shard[1] == 1 else \
            f'summary.shard{self.shard[0]}of{self.shard[1]}.json'
        atomic_write_json(osp.join(self.out_dir, name), summary, indent=1)
        print_log(
            f'SAM embeddings in {self.out_dir}: {written} written, '
            f'{skipped} skipped (already there), {len(failures)} failed, '
            f'{summary["present"]} present, {summary["seconds"]:.1f} s',
            logger='current')
        for key, error in failures.items():
            print_log(f'{key} failed: {error}', logger='current',
                      level=logging.ERROR)
        return summary
