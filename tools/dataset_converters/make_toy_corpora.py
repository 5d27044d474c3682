"""Generate the toy pretraining corpora of the toy world (docs/toy_world.md).

Two corpora, drawn with the vocabulary and the drawing of
``make_toy_refer.py`` (shapes, colours, sizes, polygons, backgrounds)::

    OUT/
      captions/images/cap_000001.png   # one main shape per image
      captions/captions_train.csv      # tab separated, open_clip's CSV
      captions/captions_val.csv        #   columns filepath, title (+ label,
                                       #   size); paths relative to captions/
      classes/images/cls_000001.png    # 2-8 shapes, class labels only
      classes/instances_train.json     # COCO instances, 20 categories
      classes/instances_val.json       #   'red circle' ... 'purple plus'

*captions*: object-centric image-caption pairs for CLIP pretraining. Each
image shows one flat shape (small or big, anywhere) on a grey, tinted or
textured background; its caption names the shape (a synonym), usually its
colour and sometimes its size through a template ("a photo of a small red
circle", "a blue cross"). ``label`` is the shape-colour class
(``CLASS_NAMES``), ``size`` is ``small``/``big``.

*classes*: class-level multi-object data (PPT's middle source): 2-8
non-overlapping shapes, several of the same class allowed, annotated with
COCO boxes and segmentations (polygon, or compressed RLE for about one in
five) of the 20 shape-colour categories; no referring expressions.

Determinism and disjointness: image ``i`` of a corpus is drawn from
``np.random.default_rng([seed, i, NAMESPACES[corpus]])``; the referring
data uses ``[seed, i]``. numpy pads seed entropy with zero words, so the
nonzero third word (different per corpus) gives every corpus image a seed
state that no referring image (nor any other corpus image) has, for every
pair of seeds: the corpora never redraw a referring image. Indices run on
over the splits, so val images are not train images.

Resumable: images already on disk are kept (they are deterministic) and
the annotation files are written last; every file is written atomically.

Usage::

    python tools/dataset_converters/make_toy_corpora.py --out data/toy_corpora
"""
import argparse
import csv
import importlib.util
import io
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
from mmengine.utils import ProgressBar
from pycocotools import mask as mask_utils

from mmwris.utils import atomic_write_bytes


def _load_toy_refer():
    """The sibling ``make_toy_refer.py`` (tools are not a package)."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'make_toy_refer.py')
    spec = importlib.util.spec_from_file_location('make_toy_refer', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toy_refer = _load_toy_refer()
CATEGORIES, COLOURS, NOUNS = (toy_refer.CATEGORIES, toy_refer.COLOURS,
                              toy_refer.NOUNS)

CORPORA = ('captions', 'classes')
SPLITS = ('train', 'val')
# Third seed word per corpus (nonzero; the referring data has none).
NAMESPACES = {'captions': 0x63617074, 'classes': 0x636c6173}
MAX_SEED = 2**32 - 1
# The shape-colour classes: captions' labels, the instances' categories and
# the zero-shot classes of the CLIP evaluation.
CLASS_NAMES = tuple(f'{colour} {shape}' for colour in COLOURS
                    for shape in CATEGORIES)
# Half extents of the main shape (the referring data's sizes, widened).
CAPTION_HALF_SIZES = {'small': (7, 10), 'big': (14, 19)}
CLASS_HALF_SIZE = (6, 18)
CAPTION_TEMPLATES = ('{}', 'a {}', 'a {}', 'a photo of a {}',
                     'a picture of a {}', 'an image of a {}',
                     'a drawing of a {}', 'there is a {}',
                     'a {} on a plain background', 'a {} in the image')
COLOUR_PROB = 0.85
SIZE_PROB = 0.5
PLACE_TRIES = 100


def corpus_rng(seed: int, corpus: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of ``corpus`` (see the module doc)."""
    return np.random.default_rng([seed, index, NAMESPACES[corpus]])


def caption_text(rng, colour: str, shape: str, size: str) -> str:
    """A caption of one shape: a template over (size) (colour) noun."""
    words = []
    if rng.random() < SIZE_PROB:
        words.append(toy_refer._pick(rng, toy_refer.SIZE_WORDS[size]))
    if rng.random() < COLOUR_PROB:
        words.append(colour)
    words.append(toy_refer._pick(rng, NOUNS[shape]))
    template = toy_refer._pick(rng, CAPTION_TEMPLATES)
    return toy_refer._stylise(rng, template.format(' '.join(words)))


def varied_background(rng, width: int, height: int) -> np.ndarray:
    """``[H, W, 3]`` uint8: the referring data's noisy grey gradient, half
    the time tinted (per-channel gain 0.85-1.15), a third of the time with
    a coarse texture."""
    img = toy_refer._background(rng, width, height).astype(np.float64)
    if rng.random() < 0.5:
        img *= rng.uniform(0.85, 1.15, 3)
    if rng.random() < 1 / 3:
        coarse = rng.normal(0, 10, (height // 8 + 1, width // 8 + 1))
        img += cv2.resize(coarse, (width, height),
                          interpolation=cv2.INTER_LINEAR)[:, :, None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def paint_shape(img: np.ndarray, shape: str, colour: str, cx: float,
                cy: float, half: float):
    """Paint a flat shape into ``img`` (in place); return (polygon, RLE)."""
    height, width = img.shape[:2]
    poly = toy_refer._polygon(shape, cx, cy, half)
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], height, width))
    img[mask_utils.decode(rle).astype(bool)] = COLOURS[colour]
    return poly, rle


def _image_size(rng, cfg):
    return (int(rng.integers(cfg['min_size'], cfg['max_size'] + 1)),
            int(rng.integers(cfg['min_size'], cfg['max_size'] + 1)))


def make_caption_image(rng, cfg):
    """One caption pair: ``(rgb [H, W, 3], row)``, ``row`` with ``title``,
    ``label`` and ``size``."""
    width, height = _image_size(rng, cfg)
    colour = toy_refer._pick(rng, tuple(COLOURS))
    shape = toy_refer._pick(rng, CATEGORIES)
    size = toy_refer._pick(rng, tuple(CAPTION_HALF_SIZES))
    low, high = CAPTION_HALF_SIZES[size]
    half = float(rng.integers(low, high + 1))
    margin = half + toy_refer.BORDER
    cx = float(rng.uniform(margin, width - margin))
    cy = float(rng.uniform(margin, height - margin))
    img = varied_background(rng, width, height)
    paint_shape(img, shape, colour, cx, cy, half)
    title = caption_text(rng, colour, shape, size)
    return img, dict(title=title, label=f'{colour} {shape}', size=size)


def _free(box, boxes):
    gap = toy_refer.GAP
    return all(box[0] > b[2] + gap or box[2] < b[0] - gap or
               box[1] > b[3] + gap or box[3] < b[1] - gap for b in boxes)


def _place_shapes(rng, width, height, cfg):
    """Non-overlapping ``(cx, cy, half)`` of 2-8 shapes; shapes that find no
    free place are dropped, a layout with fewer than ``min_objects`` is
    drawn again."""
    margin = toy_refer.BORDER
    for _ in range(toy_refer.MAX_LAYOUT_TRIES):
        wanted = int(rng.integers(cfg['min_objects'],
                                  cfg['max_objects'] + 1))
        halves = rng.integers(CLASS_HALF_SIZE[0], CLASS_HALF_SIZE[1] + 1,
                              wanted)
        boxes, placed = [], []
        for half in sorted(halves.tolist(), reverse=True):
            for _ in range(PLACE_TRIES):
                cx = float(rng.uniform(half + margin, width - half - margin))
                cy = float(rng.uniform(half + margin,
                                       height - half - margin))
                box = (cx - half, cy - half, cx + half, cy + half)
                if _free(box, boxes):
                    boxes.append(box)
                    placed.append((cx, cy, float(half)))
                    break
        if len(placed) >= cfg['min_objects']:
            return placed
    raise RuntimeError(f'cannot place {cfg["min_objects"]}+ shapes in a '
                       f'{width}x{height} image')


def make_class_image(rng, cfg):
    """One class-level image: ``(rgb, width, height, anns)``; each ann has
    ``category_id`` (1-based in ``CLASS_NAMES``), ``segmentation``,
    ``area`` and ``bbox``."""
    width, height = _image_size(rng, cfg)
    placed = _place_shapes(rng, width, height, cfg)
    img = varied_background(rng, width, height)
    anns = []
    for cx, cy, half in placed:
        class_id = int(rng.integers(len(CLASS_NAMES)))
        colour, shape = CLASS_NAMES[class_id].split(' ')
        poly, rle = paint_shape(img, shape, colour, cx, cy, half)
        if rng.random() < toy_refer.RLE_FRACTION:
            seg = {'size': [height, width],
                   'counts': rle['counts'].decode('ascii')}
        else:
            seg = [poly]
        anns.append({'category_id': class_id + 1, 'segmentation': seg,
                     'area': int(mask_utils.area(rle)),
                     'bbox': [float(v) for v in mask_utils.toBbox(rle)]})
    return img, width, height, anns


CSV_COLUMNS = ('filepath', 'title', 'label', 'size')
MAX_OBJECTS = 10
SMALLEST_IMAGE = 2 * (max(CAPTION_HALF_SIZES['big'][1], CLASS_HALF_SIZE[1]) +
                      toy_refer.BORDER + 1)
FILE_PREFIXES = {'captions': 'cap', 'classes': 'cls'}
DRAWERS = {'captions': make_caption_image, 'classes': make_class_image}


def _check_settings(corpus_dir: str, settings: dict) -> None:
    """Record the settings of a corpus folder; refuse to resume one written
    with other settings (its images would not match)."""
    path = osp.join(corpus_dir, 'settings.json')
    if osp.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != settings:
            raise ValueError(
                f'{corpus_dir} was generated with other settings ({old}, now '
                f'{settings}): delete it or use the same arguments.')
    else:
        atomic_write_bytes(path, json.dumps(settings, indent=1).encode())


def _draw_corpus(corpus_dir, corpus, counts, cfg, progress):
    """Draw every image of ``corpus`` and write the missing PNGs.

    Yields:
        tuple: ``(split, image_id, file_name, drawn)``, ``drawn`` being what
        the corpus' drawer returned after the image.
    """
    os.makedirs(osp.join(corpus_dir, 'images'), exist_ok=True)
    bar = ProgressBar(sum(counts.values()), file=sys.stdout) \
        if progress else None
    index = 0
    for split in SPLITS:
        for _ in range(counts[split]):
            rng = corpus_rng(cfg['seed'], corpus, index)
            index += 1
            img, *drawn = DRAWERS[corpus](rng, cfg)
            file_name = '%s_%06d.png' % (FILE_PREFIXES[corpus], index)
            path = osp.join(corpus_dir, 'images', file_name)
            if not osp.exists(path):
                atomic_write_bytes(
                    path, cv2.imencode('.png', img[:, :, ::-1])[1].tobytes())
            if bar is not None:
                bar.update()
            yield split, index, file_name, drawn
    if bar is not None:
        sys.stdout.write('\n')


def _caption_csv(rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, delimiter='\t',
                            lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode('utf-8')


def make_captions(corpus_dir, counts, cfg, progress=True) -> dict:
    """Write the caption corpus; return the number of pairs per split."""
    rows = {split: [] for split in SPLITS}
    for split, _, file_name, (row, ) in _draw_corpus(
            corpus_dir, 'captions', counts, cfg, progress):
        rows[split].append(dict(row, filepath=f'images/{file_name}'))
    for split in SPLITS:
        atomic_write_bytes(osp.join(corpus_dir, f'captions_{split}.csv'),
                           _caption_csv(rows[split]))
    return {split: len(rows[split]) for split in SPLITS}


def make_classes(corpus_dir, counts, cfg, progress=True) -> dict:
    """Write the class-level corpus; return images and instances per
    split."""
    coco = {split: dict(images=[], annotations=[]) for split in SPLITS}
    num_anns = 0
    for split, image_id, file_name, (width, height, anns) in _draw_corpus(
            corpus_dir, 'classes', counts, cfg, progress):
        coco[split]['images'].append(
            {'id': image_id, 'file_name': file_name, 'height': height,
             'width': width})
        for ann in anns:
            num_anns += 1
            coco[split]['annotations'].append(
                {'id': num_anns, 'image_id': image_id, **ann, 'iscrowd': 0})
    categories = [{'id': i + 1, 'name': name,
                   'supercategory': name.split(' ')[1]}
                  for i, name in enumerate(CLASS_NAMES)]
    summary = {}
    for split in SPLITS:
        instances = dict(
            info={'description': 'mmwris toy class-level corpus',
                  'version': '1.0'},
            categories=categories, **coco[split])
        atomic_write_bytes(
            osp.join(corpus_dir, f'instances_{split}.json'),
            json.dumps(instances).encode('utf-8'))
        summary[split] = dict(images=len(coco[split]['images']),
                              instances=len(coco[split]['annotations']))
    return summary


def make_toy_corpora(out_dir, corpora=CORPORA, seed=0,
                     num_captions=(4000, 500), num_class_images=(800, 100),
                     min_size=96, max_size=160, min_objects=2,
                     max_objects=8, progress=True) -> dict:
    """Write the ``corpora`` under ``out_dir``; return their summaries.

    Args:
        out_dir (str): Output root (one folder per corpus).
        corpora (Sequence[str]): Which of ``CORPORA`` to write.
        seed (int): 0 .. 2**32 - 1.
        num_captions (tuple[int, int]): Train and val caption pairs.
        num_class_images (tuple[int, int]): Train and val class images.
        min_size, max_size (int): Image side range (pixels).
        min_objects, max_objects (int): Shapes per class-level image.
        progress (bool): Show a progress bar.
    """
    unknown = sorted(set(corpora) - set(CORPORA))
    if unknown or not corpora:
        raise ValueError(f'corpora must be some of {CORPORA}, got '
                         f'{list(corpora)}')
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f'seed must be in 0..{MAX_SEED}, got {seed}')
    for name, counts in (('num_captions', num_captions),
                         ('num_class_images', num_class_images)):
        if len(counts) != 2 or min(counts) < 1:
            raise ValueError(f'{name} must be two positive counts (train, '
                             f'val), got {counts}')
    if not SMALLEST_IMAGE <= min_size <= max_size:
        raise ValueError(f'need {SMALLEST_IMAGE} <= min_size <= max_size, '
                         f'got {min_size}, {max_size}')
    if not 1 <= min_objects <= max_objects <= MAX_OBJECTS:
        raise ValueError('need 1 <= min_objects <= max_objects <= '
                         f'{MAX_OBJECTS}, got {min_objects}, {max_objects}')
    settings = dict(
        captions=dict(seed=seed, counts=list(num_captions),
                      min_size=min_size, max_size=max_size),
        classes=dict(seed=seed, counts=list(num_class_images),
                     min_size=min_size, max_size=max_size,
                     min_objects=min_objects, max_objects=max_objects))
    makers = dict(captions=make_captions, classes=make_classes)
    summary = {}
    for corpus in CORPORA:
        if corpus not in corpora:
            continue
        corpus_dir = osp.join(out_dir, corpus)
        os.makedirs(corpus_dir, exist_ok=True)
        _check_settings(corpus_dir, settings[corpus])
        counts = dict(zip(SPLITS, settings[corpus]['counts']))
        summary[corpus] = makers[corpus](
            corpus_dir, counts, settings[corpus], progress)
    return summary


def parse_args():
    parser = argparse.ArgumentParser(
        description='Generate the toy caption and class-level corpora.')
    parser.add_argument('--out', default='data/toy_corpora',
                        help='output directory')
    parser.add_argument('--corpora', nargs='+', default=list(CORPORA),
                        choices=CORPORA)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-captions', type=int, nargs=2,
                        default=(4000, 500), metavar=('TRAIN', 'VAL'))
    parser.add_argument('--num-class-images', type=int, nargs=2,
                        default=(800, 100), metavar=('TRAIN', 'VAL'))
    parser.add_argument('--min-size', type=int, default=96)
    parser.add_argument('--max-size', type=int, default=160)
    parser.add_argument('--min-objects', type=int, default=2)
    parser.add_argument('--max-objects', type=int, default=8)
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        summary = make_toy_corpora(
            args.out, corpora=args.corpora, seed=args.seed,
            num_captions=tuple(args.num_captions),
            num_class_images=tuple(args.num_class_images),
            min_size=args.min_size, max_size=args.max_size,
            min_objects=args.min_objects, max_objects=args.max_objects,
            progress=not args.no_progress)
    except ValueError as error:
        raise SystemExit(f'make_toy_corpora: {error}')
    for corpus, stats in summary.items():
        print(f'{corpus}: {stats} in {osp.join(args.out, corpus)}')


if __name__ == '__main__':
    main()
