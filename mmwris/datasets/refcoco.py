"""Referring datasets in the refer-toolkit layout (RefCOCO/+/g, ReferIt)."""
import json
import logging
import os.path as osp
import pickle
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from mmwris.phrases.cache import load_phrase_file
from mmwris.proposals.storage import load_index
from mmwris.registry import DATASETS
from mmwris.structures import fields as F
from mmwris.utils.safe_pickle import UnsafePickleError, safe_pickle_load
from .draws import DRAW_KEY, draw_rng, key_of

REFER_SPLITS = ('train', 'val', 'test', 'testA', 'testB', 'testC')
REF_KEYS = ('ref_id', 'ann_id', 'image_id', 'split', 'sentences')


def load_refs(refs_file: str) -> List[dict]:
    """Load and validate a refer-toolkit ``refs(<splitBy>).p`` pickle.

    Read with a restricted unpickler that builds only builtin containers
    and scalars: a pickle that asks for any other Python global (which is
    how a pickle runs code) is refused before anything runs.
    """
    with get_local_path(refs_file) as local_path:
        try:
            refs = safe_pickle_load(local_path)
        except UnsafePickleError as e:
            raise UnsafePickleError(str(e).replace(local_path, refs_file))
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
                AttributeError, ImportError, IndexError) as e:
            raise ValueError(f'{refs_file} is not a refer refs pickle: '
                             f'{type(e).__name__}: {e}') from e
    if not isinstance(refs, list) or not refs:
        raise ValueError(f'{refs_file} is not a refer refs pickle: expected '
                         f'a non-empty list of ref dicts, got '
                         f'{type(refs).__name__}.')
    for i, ref in enumerate(refs):
        missing = [k for k in REF_KEYS
                   if not isinstance(ref, dict) or k not in ref]
        if missing:
            raise ValueError(f'{refs_file} is not a refer refs pickle: record '
                             f'{i} lacks the keys {missing}.')
    return refs


def expression_text(sent: dict) -> str:
    """The expression of a refer sentence record (``sent``, else ``raw``),
    stripped. Python 2 pickles are read as latin-1 ``str``; an expression
    stored as ``bytes`` must be UTF-8 (else ``UnicodeDecodeError``)."""
    text = sent.get('sent', sent.get('raw', ''))
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode('utf-8')
    return str(text).strip()


def read_coco_file(ann_file: str) -> dict:
    """Read a COCO ``instances.json`` (with ``images`` and ``annotations``),
    with clear errors for invalid JSON or another kind of file."""
    with get_local_path(ann_file) as local_path:
        try:
            with open(local_path) as f:
                coco = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{ann_file} is not valid JSON: {e}') from e
    if not isinstance(coco, dict) or 'images' not in coco \
            or 'annotations' not in coco:
        raise ValueError(f'{ann_file} is not a COCO instances file (needs '
                         '"images" and "annotations").')
    return coco


def load_instances(ann_file: str) -> tuple:
    """Load a COCO ``instances.json``; return (images, annotations) by id."""
    coco = read_coco_file(ann_file)
    images = {img['id']: img for img in coco['images']}
    anns = {ann['id']: ann for ann in coco['annotations']}
    return images, anns


def first_ids(ids: Sequence, limit: int = 20) -> str:
    """``ids`` for an error message: the first ``limit``, then a count."""
    more = f' ... ({len(ids) - limit} more)' if len(ids) > limit else ''
    return f'{list(ids[:limit])}{more}'


@DATASETS.register_module()
class RefCOCODataset(BaseDataset):
    """RefCOCO / RefCOCO+ / RefCOCOg / ReferIt in the refer-toolkit layout.

    ``data_root/ann_file`` is the COCO ``instances.json``,
    ``data_root/refs_file`` the ``refs(<splitBy>).p`` pickle and
    ``data_root/data_prefix['img_path']`` the images folder.

    Test mode (``test_mode=True``) yields one sample per (ref, sentence) so
    every expression is evaluated. Training mode yields one sample per ref
    with a random expression on every draw, and keeps for each ref the
    other refs of its image (``other_refs``), from which the pipeline's
    ``SampleNegativeTexts`` (TRIS's calibration negatives) and
    ``SampleIaDPartner`` (PCNet's IaD partner) draw. Every draw of a sample
    comes from its own generator, seeded by the key the ``Keyed*Sampler``
    gives its index (:mod:`mmwris.datasets.draws`), so resumed training
    repeats it exactly.

    Args:
        refs_file (str): Refs pickle, relative to ``data_root``.
        split (str | Sequence[str]): refer split name(s): ``train``, ``val``,
            ``test``, ``testA``, ``testB``. With several, each sample records
            its ``split`` and metrics report every split separately.
        check_images (bool): Check at build time that every image file
            exists. Defaults to True.
        allow_plain_flip (bool): Permit a plain ``RandomFlip`` in the
            pipeline (it corrupts "left"/"right" expressions; use
            ``RandomFlipWithText``). Defaults to False.
        pseudo_label_dir (str, optional): TRIS step 2: train on pseudo
            masks. Each ref gets ``pseudo_label_path =
            {pseudo_label_dir}/masks/{ref_id}.png`` (uint8 at the image's
            original size: 0 background, 1 foreground, 255 ignore), which
            ``LoadRISAnnotations`` loads instead of the GT mask. The path is
            taken as given (not joined with ``data_root``). Training only:
            evaluation datasets keep the GT masks. Defaults to None.
        skip_missing_pseudo_labels (bool): Drop (with a warning) the refs
            without a pseudo-label file instead of raising a
            ``FileNotFoundError``. Defaults to False.
        phrase_file (str, optional): PCNet's phrases of every expression
            (written by ``tools/decompose_phrases.py``), relative to
            ``data_root`` unless absolute. Each sample then carries
            ``sentence_phrases`` (and the partner's as
            ``partner_sentence_phrases``), which ``LoadPhrases`` turns into
            ``phrases``. Every expression of the split(s) must be in it.
            Defaults to None.
        proposal_dir (str, optional): PCNet's mask proposals (the output
            folder of ``tools/generate_proposals.py``), relative to
            ``data_root`` unless absolute. Every image of the split(s) must
            be in its ``index.json``; each sample carries ``proposal_dir``
            for ``LoadProposals``. Defaults to None.
    """
    METAINFO = dict(classes=('background', 'target'),
                    palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 refs_file: str = 'refs(unc).p',
                 split: Union[str, Sequence[str]] = 'train',
                 check_images: bool = True,
                 allow_plain_flip: bool = False,
                 pseudo_label_dir: Optional[str] = None,
                 skip_missing_pseudo_labels: bool = False,
                 phrase_file: Optional[str] = None,
                 proposal_dir: Optional[str] = None,
                 ann_file: str = 'instances.json',
                 data_prefix: dict = dict(img_path='images'),
                 **kwargs) -> None:
        if 'num_negatives' in kwargs:
            raise TypeError(
                'RefCOCODataset(num_negatives=...) became the pipeline '
                'transform SampleNegativeTexts(num_negatives=K): put it at '
                'the start of the training pipeline.')
        self.refs_file = refs_file
        self.splits = [split] if isinstance(split, str) else list(split)
        if not self.splits:
            raise ValueError('split must name at least one split.')
        self.check_images = check_images
        self.pseudo_label_dir = pseudo_label_dir
        self.skip_missing_pseudo_labels = skip_missing_pseudo_labels
        self.phrase_file = phrase_file
        self.proposal_dir = proposal_dir
        if pseudo_label_dir is not None and kwargs.get('test_mode', False):
            raise ValueError('pseudo_label_dir is for training datasets: '
                             'evaluation (test_mode=True) uses the GT masks.')
        super().__init__(
            ann_file=ann_file, data_prefix=data_prefix, **kwargs)
        if not allow_plain_flip:
            self._reject_plain_flip()
        self._pool: Optional[List[Tuple[int, Tuple[str, ...]]]] = None
        for transform in self.pipeline.transforms:
            if hasattr(transform, 'bind_dataset'):
                transform.bind_dataset(self)

    def expression_pool(self) -> List[Tuple[int, Tuple[str, ...]]]:
        """``(image_id, expressions)`` of every training ref, in index
        order (built once; what negative samplers draw other images
        from)."""
        if self.test_mode:
            raise ValueError('The expression pool is for training datasets '
                             '(test_mode=False).')
        if self._pool is None:
            self._pool = []
            for idx in range(len(self)):
                info = self.get_data_info(idx)
                self._pool.append((info[F.IMAGE_ID], tuple(
                    text for _, text in info[F.SENTENCES])))
        return self._pool

    def _join_prefix(self) -> None:
        super()._join_prefix()
        if self.data_root and not osp.isabs(self.refs_file):
            self.refs_file = osp.join(self.data_root, self.refs_file)
        if self.data_root and self.phrase_file is not None \
                and not osp.isabs(self.phrase_file):
            self.phrase_file = osp.join(self.data_root, self.phrase_file)
        if self.data_root and self.proposal_dir is not None \
                and not osp.isabs(self.proposal_dir):
            self.proposal_dir = osp.join(self.data_root, self.proposal_dir)

    def _reject_plain_flip(self) -> None:
        for transform in self.pipeline.transforms:
            name = type(transform).__name__
            if name == 'RandomFlip' and 'horizontal' in str(
                    getattr(transform, 'direction', 'horizontal')):
                raise ValueError(
                    'A plain horizontal RandomFlip mirrors the image but not '
                    'the expression ("the man on the left" becomes wrong). '
                    'Use RandomFlipWithText, or set allow_plain_flip=True.')

    def load_data_list(self) -> List[dict]:
        refs = load_refs(self.refs_file)
        images, anns = load_instances(self.ann_file)
        available = sorted({ref['split'] for ref in refs})
        for split in self.splits:
            if split not in available:
                raise ValueError(
                    f'Unknown split "{split}" for {self.refs_file}: it has '
                    f'{available} (refer split names are {REFER_SPLITS}).')

        per_sentence = self.test_mode
        phrases = None
        if self.phrase_file is not None:
            phrases = self._load_phrases(refs)
        data_list = []
        checked_images = set()
        owners: Dict[int, int] = {}
        for ref in refs:
            if ref['split'] not in self.splits:
                continue
            info = self._parse_ref(ref, images, anns)
            for sent_id, _ in info['sentences']:
                if owners.setdefault(sent_id, ref['ref_id']) != ref['ref_id']:
                    raise ValueError(
                        f'sent_id={sent_id} belongs to two refs, '
                        f'ref_id={owners[sent_id]} and ref_id={ref["ref_id"]}'
                        f' in {self.refs_file}: sent_ids must be unique '
                        '(results, phrases and pseudo labels are keyed by '
                        'them).')
            if self.check_images and info['img_path'] not in checked_images:
                if not osp.isfile(info['img_path']):
                    raise FileNotFoundError(
                        f'Image {info["img_path"]} of ref_id={ref["ref_id"]} '
                        f'(image_id={ref["image_id"]}, {self.refs_file}) '
                        'does not exist.')
                checked_images.add(info['img_path'])
            if per_sentence:
                for sent_id, text in info.pop('sentences'):
                    sample = dict(info, sent_id=sent_id, text=text)
                    if phrases is not None:
                        sample['sentence_phrases'] = phrases[sent_id]
                    data_list.append(sample)
            else:
                if phrases is not None:
                    info['phrases_by_sent'] = {
                        sent_id: phrases[sent_id]
                        for sent_id, _ in info['sentences']}
                data_list.append(info)
        if not data_list:
            raise ValueError(f'No refs of split {self.splits} in '
                             f'{self.refs_file}.')
        if not per_sentence:
            self._attach_same_image_refs(data_list)
        if self.proposal_dir is not None:
            self._attach_proposals(data_list)
        if self.pseudo_label_dir is not None:
            data_list = self._attach_pseudo_labels(data_list)
        return data_list

    def _load_phrases(self, refs: List[dict]) -> Dict[int, List[str]]:
        """The phrase file's phrases; every expression of the selected
        split(s) must be there."""
        phrases = load_phrase_file(self.phrase_file)
        missing = [sent['sent_id'] for ref in refs
                   if ref['split'] in self.splits
                   for sent in ref['sentences']
                   if sent['sent_id'] not in phrases]
        if missing:
            raise KeyError(
                f'The phrase file {self.phrase_file} lacks {len(missing)} '
                f'expressions of split {self.splits} of {self.refs_file}: '
                f'sent_ids {first_ids(missing)}. Write them with '
                f'tools/decompose_phrases.py --refs {self.refs_file} --out '
                f'{self.phrase_file} (a rerun keeps the phrases already '
                'there).')
        return phrases

    def _attach_proposals(self, data_list: List[dict]) -> None:
        """Check that every image has proposals; point samples at them."""
        indexed = set(load_index(self.proposal_dir)['images'])
        missing = sorted({info['image_id'] for info in data_list
                          if str(info['image_id']) not in indexed})
        if missing:
            raise KeyError(
                f'The proposals in {self.proposal_dir} lack {len(missing)} '
                f'images of split {self.splits} of {self.refs_file}: '
                f'image_ids {first_ids(missing)}. Generate them with '
                f'tools/generate_proposals.py --out {self.proposal_dir} (a '
                'rerun keeps the images already done).')
        for info in data_list:
            info['proposal_dir'] = self.proposal_dir

    def _attach_pseudo_labels(self, data_list: List[dict]) -> List[dict]:
        """Point every ref at its pseudo-label PNG; drop or report the refs
        without one."""
        folder = osp.join(self.pseudo_label_dir, 'masks')
        kept, missing = [], []
        for info in data_list:
            path = osp.join(folder, f'{info["ref_id"]}.png')
            if osp.isfile(path):
                kept.append(dict(info, pseudo_label_path=path))
            else:
                missing.append(info['ref_id'])
        if missing and not self.skip_missing_pseudo_labels:
            raise FileNotFoundError(
                f'{len(missing)} of {len(data_list)} refs have no pseudo '
                f'label in {folder}: ref_ids {first_ids(missing)}. Generate '
                'them (tools/generate_pseudo_labels.py) or set '
                'skip_missing_pseudo_labels=True.')
        if missing:
            print_log(
                f'Skipped {len(missing)} of {len(data_list)} refs without a '
                f'pseudo label in {folder}.',
                logger='current', level=logging.WARNING)
        if not kept:
            raise ValueError(f'No ref of split {self.splits} has a pseudo '
                             f'label in {folder}.')
        return kept

    def _parse_ref(self, ref: dict, images: Dict[int, dict],
                   anns: Dict[int, dict]) -> dict:
        """Turn one refer record into a data info dict."""
        where = f'ref_id={ref["ref_id"]} in {self.refs_file}'
        ann = anns.get(ref['ann_id'])
        if ann is None:
            raise KeyError(f'{where} has ann_id={ref["ann_id"]}, which is '
                           f'not in {self.ann_file}.')
        img = images.get(ref['image_id'])
        if img is None:
            raise KeyError(f'{where} has image_id={ref["image_id"]}, which '
                           f'is not in {self.ann_file}.')
        sentences = []
        for sent in ref['sentences']:
            try:
                text = expression_text(sent)
            except UnicodeDecodeError as e:
                raise ValueError(f'{where}: sent_id={sent.get("sent_id")} is '
                                 f'bytes that are not UTF-8 ({e}).') from e
            if not text:
                raise ValueError(f'{where}: sent_id={sent.get("sent_id")} '
                                 'is an empty expression.')
            sentences.append((sent['sent_id'], text))
        if not sentences:
            raise ValueError(f'{where} has no expressions.')
        x, y, w, h = (float(v) for v in ann['bbox'])
        if not (w > 0 and h > 0 and x < img['width'] and y < img['height']
                and x + w > 0 and y + h > 0):
            raise ValueError(
                f'{where}: ann_id={ref["ann_id"]} has the box [x, y, w, h] = '
                f'{ann["bbox"]}, which is empty or outside its '
                f'{img["width"]}x{img["height"]} image ({self.ann_file}).')
        return dict(
            img_path=osp.join(self.data_prefix.get('img_path', ''),
                              img['file_name']),
            ref_id=ref['ref_id'],
            ann_id=ref['ann_id'],
            image_id=ref['image_id'],
            category_id=ref.get('category_id', ann.get('category_id')),
            split=ref['split'],
            height=img['height'],
            width=img['width'],
            segmentation=ann['segmentation'],
            gt_bbox=[x, y, x + w, y + h],
            sentences=sentences)

    @staticmethod
    def _attach_same_image_refs(data_list: List[dict]) -> None:
        """Give each ref the other refs of its image (``other_refs``: their
        ``ref_id``, ``sentences`` and ``phrases_by_sent`` if any)."""
        by_image = defaultdict(list)
        for info in data_list:
            by_image[info['image_id']].append(info)
        for infos in by_image.values():
            for info in infos:
                info['other_refs'] = [
                    {k: other[k] for k in ('ref_id', 'sentences',
                                           'phrases_by_sent') if k in other}
                    for other in infos if other is not info]

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Run the pipeline on sample ``idx``; a training sample first draws
        its expression (and phrases) with its own generator."""
        data_info = self.get_data_info(idx)
        data_info[DRAW_KEY] = key_of(idx)
        if F.SENTENCES in data_info:
            rng = draw_rng(data_info, 'expression')
            data_info[F.SENT_ID], data_info[F.TEXT] = rng.choice(
                data_info.pop(F.SENTENCES))
            phrases = data_info.pop(F.PHRASES_BY_SENT, None)
            if phrases is not None:
                data_info[F.SENTENCE_PHRASES] = list(
                    phrases[data_info[F.SENT_ID]])
        try:
            return self.pipeline(data_info)
        except Exception as e:
            message = (f'{e} (while loading ref_id={data_info["ref_id"]}, '
                       f'sent_id={data_info["sent_id"]}, image '
                       f'{data_info["img_path"]})')
            try:
                error = type(e)(message)
            except TypeError:
                error = RuntimeError(message)
            raise error from e
