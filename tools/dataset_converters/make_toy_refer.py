"""Generate a small synthetic referring image segmentation dataset.

The output follows the refer toolkit (lichengunc/refer) layout used by
RefCOCO, so the same loaders can read it::

    OUT/
      toyref/instances.json    # COCO: info, licenses, images, annotations,
                               #       categories
      toyref/refs(synth).p     # pickle (protocol 4) of a list of ref dicts
      images/toy_000001.png    # RGB images, file_name 'toy_%06d.png' % id

Each image shows 2-5 non-overlapping flat-coloured shapes (circle, square,
triangle, plus; COCO category ids 1-4) in one of five colours and two sizes
("small"/"big", area ratio > 2.5) on a noisy grey gradient. Colour/shape
pairs are unique within an image, so every shape gets a ref with 2-4
distinct expressions that are true for it and for no other shape in its
image, built from colour, shape, size, position and relation templates.

Masks are rasterised once with pycocotools from the shape polygon; the
same mask is painted into the image and stored as the annotation, either
as that polygon or (for about one annotation in five) as compressed RLE.

Splits are per image: the first ``num_train`` images are ``train``, then
``val``, ``testA`` and ``testB``. Like RefCOCO's people/objects split,
testA images only contain circles and squares, testB images only
triangles and pluses, and train/val images use all four shapes.

Sentences follow REFER: ``raw`` is the expression as written (sometimes
capitalised or ending with a period), ``sent`` is ``raw`` lower-cased with
punctuation removed and ``tokens`` is ``sent.split()``.

Usage::

    python tools/dataset_converters/make_toy_refer.py --out data/toy_refer
"""
import argparse
import json
import os
import os.path as osp
import pickle
import re

import cv2
import numpy as np
from pycocotools import mask as mask_utils

DATASET = 'toyref'
SPLIT_BY = 'synth'
SPLITS = ('train', 'val', 'testA', 'testB')

CATEGORIES = ('circle', 'square', 'triangle', 'plus')
SPLIT_SHAPES = {
    'train': CATEGORIES,
    'val': CATEGORIES,
    'testA': ('circle', 'square'),
    'testB': ('triangle', 'plus'),
}
COLOURS = {
    'red': (220, 30, 30),
    'green': (30, 170, 50),
    'blue': (30, 70, 220),
    'yellow': (240, 210, 20),
    'purple': (150, 40, 190),
}
# Half extent of a shape in pixels; big/small area ratio >= (15 / 9)^2.
HALF_SIZES = {'small': (8, 9), 'big': (15, 17)}

NOUNS = {
    'circle': ('circle', 'round shape', 'disc'),
    'square': ('square', 'box'),
    'triangle': ('triangle',),
    'plus': ('plus', 'cross', 'plus sign'),
}
SIZE_WORDS = {'small': ('small', 'little'), 'big': ('big', 'large')}
COMPARATIVES = {'small': ('smaller',), 'big': ('bigger', 'larger')}
EXTREME_TEMPLATES = {
    'left': ('the leftmost {}', 'the {} on the left', 'the left {}'),
    'right': ('the rightmost {}', 'the {} on the right', 'the right {}'),
    'top': ('the top {}', 'the topmost {}', 'the {} at the top'),
    'bottom': ('the bottom {}', 'the lowest {}', 'the {} at the bottom'),
}
RELATION_WORDS = {
    'left': ('left of', 'to the left of'),
    'right': ('right of', 'to the right of'),
    'above': ('above', 'over'),
    'below': ('below', 'under', 'beneath'),
}
# Attribute subsets used to describe a shape or a group of shapes.
ALL_ATTRS = [(), ('colour', ), ('shape', ), ('size', ), ('colour', 'shape'),
             ('size', 'shape'), ('size', 'colour'),
             ('size', 'colour', 'shape')]
GROUP_ATTRS = ALL_ATTRS[:4]

GAP = 4  # minimum free pixels between the boxes of two shapes
BORDER = 2  # minimum free pixels between a shape and the image border
MARGIN = 6.0  # pixels by which a positional statement must hold
RLE_FRACTION = 0.2
MAX_LAYOUT_TRIES = 200


def _polygon(shape, cx, cy, s):
    """Return the flat COCO polygon [x1, y1, ...] of a shape."""
    if shape == 'circle':
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        pts = np.stack([cx + s * np.cos(t), cy + s * np.sin(t)], 1)
    elif shape == 'square':
        pts = np.array([[-s, -s], [s, -s], [s, s], [-s, s]]) + (cx, cy)
    elif shape == 'triangle':
        pts = np.array([[0, -s], [s, s], [-s, s]]) + (cx, cy)
    else:
        a = s / 3
        pts = np.array([[-a, -s], [a, -s], [a, -a], [s, -a], [s, a], [a, a],
                        [a, s], [-a, s], [-a, a], [-s, a], [-s, -a],
                        [-a, -a]]) + (cx, cy)
    return [round(float(v), 2) for v in pts.ravel()]


def _sample_layout(rng, width, height, shapes, min_objects, max_objects):
    """Sample shapes with unique (colour, shape) pairs and place them."""
    pairs = [(c, k) for c in COLOURS for k in shapes]
    hi = min(max_objects, len(pairs))
    for _ in range(MAX_LAYOUT_TRIES):
        num = int(rng.integers(min_objects, hi + 1))
        chosen = rng.choice(len(pairs), num, replace=False)
        objs = []
        for i in chosen:
            size = ('small', 'big')[int(rng.integers(2))]
            lo, up = HALF_SIZES[size]
            objs.append(dict(colour=pairs[i][0], shape=pairs[i][1],
                             size=size, s=float(rng.integers(lo, up + 1))))
        boxes = []
        for obj in sorted(objs, key=lambda o: -o['s']):
            s = obj['s']
            for _ in range(100):
                cx = float(rng.uniform(s + BORDER, width - s - BORDER))
                cy = float(rng.uniform(s + BORDER, height - s - BORDER))
                box = (cx - s, cy - s, cx + s, cy + s)
                if all(box[0] > b[2] + GAP or box[2] < b[0] - GAP
                       or box[1] > b[3] + GAP or box[3] < b[1] - GAP
                       for b in boxes):
                    boxes.append(box)
                    obj.update(cx=cx, cy=cy)
                    break
            else:
                break
        else:
            return objs
    raise RuntimeError(
        f'cannot place {min_objects}+ shapes in a {width}x{height} image')


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _matches(obj, key):
    return all(obj[attr] == value for attr, value in key.items())


def _phrase(rng, key, comparative=False):
    """Describe the group of shapes selected by ``key`` (no article)."""
    words = []
    if 'size' in key:
        table = COMPARATIVES if comparative else SIZE_WORDS
        words.append(_pick(rng, table[key['size']]))
    if 'colour' in key:
        words.append(key['colour'])
    if 'shape' in key:
        words.append(_pick(rng, NOUNS[key['shape']]))
    else:
        nouns = ('shape', 'object', 'one') if words else ('shape', 'object')
        words.append(_pick(rng, nouns))
    return ' '.join(words)


def _keys(obj, attrs_options):
    return [{a: obj[a] for a in attrs} for attrs in attrs_options]


def _direction(dx, dy, strict):
    """Return the directions offset (dx, dy) points to.

    ``strict`` directions (used for the target) lie within a ~34 degree cone
    around the axis; loose ones (used to rule out distractors) within ~63.
    """
    out = []
    for name, main, other in (('left', -dx, dy), ('right', dx, dy),
                              ('above', -dy, dx), ('below', dy, dx)):
        if strict and main >= MARGIN and main >= 1.5 * abs(other):
            out.append(name)
        elif not strict and main > 0 and main >= 0.5 * abs(other):
            out.append(name)
    return out


def _candidates(rng, objs, target):
    """Return (type, text) pairs of expressions true only for ``target``."""
    out = []
    for key in _keys(target, ALL_ATTRS[1:]):
        if [o for o in objs if _matches(o, key)] == [target]:
            article = _pick(rng, ('the', 'the', 'a', ''))
            text = _phrase(rng, key, comparative=list(key) == ['size'])
            kind = 'attr1' if len(key) == 1 else 'attr2'
            out.append((kind, f'{article} {text}'.strip()))

    for key in _keys(target, GROUP_ATTRS):
        group = [o for o in objs if _matches(o, key)]
        if len(group) < 2:
            continue
        others = [o for o in group if o is not target]
        extremes = {
            'left': all(target['cx'] + MARGIN < o['cx'] for o in others),
            'right': all(target['cx'] - MARGIN > o['cx'] for o in others),
            'top': all(target['cy'] + MARGIN < o['cy'] for o in others),
            'bottom': all(target['cy'] - MARGIN > o['cy'] for o in others),
        }
        for name, holds in extremes.items():
            if holds:
                template = _pick(rng, EXTREME_TEMPLATES[name])
                out.append(('position', template.format(_phrase(rng, key))))

    for anchor in objs:
        if anchor is target:
            continue
        anchor_keys = [k for k in _keys(anchor, ALL_ATTRS[1:6])
                       if [o for o in objs if _matches(o, k)] == [anchor]]
        rels = _direction(target['cx'] - anchor['cx'],
                          target['cy'] - anchor['cy'], strict=True)
        for key in _keys(target, GROUP_ATTRS[:3]):
            group = [o for o in objs if _matches(o, key)
                     and o is not target and o is not anchor]
            for rel in rels:
                if any(rel in _direction(o['cx'] - anchor['cx'],
                                         o['cy'] - anchor['cy'], False)
                       for o in group):
                    continue
                anchor_key = _pick(rng, anchor_keys)
                word = _pick(rng, RELATION_WORDS[rel])
                out.append(('relation', f'the {_phrase(rng, key)} {word} '
                            f'the {_phrase(rng, anchor_key)}'))
    return out


def _normalise(raw):
    return ' '.join(re.sub(r'[^\w\s]', ' ', raw.lower()).split())


def _stylise(rng, text):
    """Vary case and final punctuation of an expression like REFER raws."""
    r = rng.random()
    if r < 0.15:
        text = text[0].upper() + text[1:]
    elif r < 0.2:
        text = text.upper()
    if rng.random() < 0.3:
        text += '.'
    return text


def _expressions(rng, objs, target, used):
    """Pick 2-4 distinct candidate expressions, spreading template types."""
    by_kind = {}
    for kind, text in _candidates(rng, objs, target):
        by_kind.setdefault(kind, []).append(text)
    kinds = sorted(by_kind)
    rng.shuffle(kinds)
    wanted = int(rng.integers(2, 5))
    chosen = []
    while len(chosen) < wanted and kinds:
        for kind in list(kinds):
            texts = by_kind[kind]
            text = texts.pop(int(rng.integers(len(texts))))
            if not texts:
                kinds.remove(kind)
            sent = _normalise(text)
            if sent not in used:
                used.add(sent)
                chosen.append(_stylise(rng, text))
            if len(chosen) == wanted:
                break
    return chosen


def _background(rng, width, height):
    grey = rng.uniform(90, 160) + rng.uniform(-8, 8, 3)
    gx, gy = rng.uniform(-15, 15, 2)
    ramp = (gx * np.linspace(-1, 1, width)[None, :] +
            gy * np.linspace(-1, 1, height)[:, None])
    noise = np.clip(rng.normal(0, 3, (height, width, 3)), -6, 6)
    img = grey[None, None, :] + ramp[:, :, None] + noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _make_image(rng, split, cfg):
    """Render one image; return (rgb, width, height, [(obj, ann, texts)])."""
    width = int(rng.integers(cfg['min_size'], cfg['max_size'] + 1))
    height = int(rng.integers(cfg['min_size'], cfg['max_size'] + 1))
    objs = _sample_layout(rng, width, height, SPLIT_SHAPES[split],
                          cfg['min_objects'], cfg['max_objects'])
    img = _background(rng, width, height)
    used = set()
    items = []
    for obj in objs:
        poly = _polygon(obj['shape'], obj['cx'], obj['cy'], obj['s'])
        rle = mask_utils.merge(mask_utils.frPyObjects([poly], height, width))
        img[mask_utils.decode(rle).astype(bool)] = COLOURS[obj['colour']]
        if rng.random() < RLE_FRACTION:
            seg = {'size': [height, width],
                   'counts': rle['counts'].decode('ascii')}
        else:
            seg = [poly]
        ann = {
            'segmentation': seg,
            'area': int(mask_utils.area(rle)),
            'bbox': [float(v) for v in mask_utils.toBbox(rle)],
        }
        texts = _expressions(rng, objs, obj, used)
        if len(texts) < 2:
            raise RuntimeError('shape without two unique expressions')
        items.append((obj, ann, texts))
    return img, width, height, items


def _atomic_write(path, data):
    """Write ``data`` to a temporary file, then move it to ``path``."""
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def make_toy_refer(out_dir, num_train=2000, num_val=100, num_testA=100,
                   num_testB=100, seed=0, min_size=96, max_size=160,
                   min_objects=2, max_objects=5):
    """Write the toy dataset to ``out_dir`` and return per-split counts."""
    smallest = 2 * (HALF_SIZES['big'][1] + BORDER + 1)
    if not smallest <= min_size <= max_size:
        raise ValueError(f'need {smallest} <= min_size <= max_size')
    if not 1 <= min_objects <= min(max_objects, 2 * len(COLOURS)):
        raise ValueError('need 1 <= min_objects <= max_objects and '
                         f'min_objects <= {2 * len(COLOURS)}')
    cfg = dict(min_size=min_size, max_size=max_size,
               min_objects=min_objects, max_objects=max_objects)
    img_dir = osp.join(out_dir, 'images')
    ann_dir = osp.join(out_dir, DATASET)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)

    counts = dict(zip(SPLITS, (num_train, num_val, num_testA, num_testB)))
    images, annotations, refs = [], [], []
    summary = {}
    index = num_sents = 0
    for split in SPLITS:
        stats = dict(images=0, refs=0, sentences=0)
        for _ in range(counts[split]):
            rng = np.random.default_rng([seed, index])
            index += 1
            image_id = index
            img, width, height, items = _make_image(rng, split, cfg)
            file_name = 'toy_%06d.png' % image_id
            png = cv2.imencode('.png', img[:, :, ::-1])[1].tobytes()
            _atomic_write(osp.join(img_dir, file_name), png)
            images.append({'id': image_id, 'file_name': file_name,
                           'height': height, 'width': width, 'license': 1})
            for obj, ann, texts in items:
                ann_id = len(annotations) + 1
                category_id = CATEGORIES.index(obj['shape']) + 1
                annotations.append({'id': ann_id, 'image_id': image_id,
                                    'category_id': category_id, **ann,
                                    'iscrowd': 0})
                sentences = []
                for raw in texts:
                    sent = _normalise(raw)
                    sentences.append({'tokens': sent.split(), 'raw': raw,
                                      'sent_id': num_sents, 'sent': sent})
                    num_sents += 1
                refs.append({
                    'sent_ids': [s['sent_id'] for s in sentences],
                    'file_name': 'toy_%06d_%d.png' % (image_id, ann_id),
                    'ann_id': ann_id,
                    'ref_id': len(refs),
                    'image_id': image_id,
                    'split': split,
                    'sentences': sentences,
                    'category_id': category_id,
                })
                stats['refs'] += 1
                stats['sentences'] += len(sentences)
            stats['images'] += 1
        summary[split] = stats

    instances = {
        'info': {'description': 'mmwris synthetic toy referring dataset',
                 'version': '1.0', 'year': 2024, 'contributor': 'mmwris',
                 'date_created': '2024-01-01'},
        'licenses': [{'id': 1, 'name': 'CC0 1.0', 'url':
                      'https://creativecommons.org/publicdomain/zero/1.0/'}],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': name, 'supercategory': 'shape'}
                       for i, name in enumerate(CATEGORIES)],
    }
    _atomic_write(osp.join(ann_dir, 'instances.json'),
                  json.dumps(instances).encode('utf-8'))
    _atomic_write(osp.join(ann_dir, f'refs({SPLIT_BY}).p'),
                  pickle.dumps(refs, protocol=4))
    summary['total'] = {k: sum(summary[s][k] for s in SPLITS)
                        for k in ('images', 'refs', 'sentences')}
    return summary


def parse_args():
    parser = argparse.ArgumentParser(
        description='Generate a synthetic RefCOCO-style toy dataset.')
    parser.add_argument('--out', default='data/toy_refer',
                        help='output directory')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--num-testA', type=int, default=100)
    parser.add_argument('--num-testB', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-size', type=int, default=96)
    parser.add_argument('--max-size', type=int, default=160)
    parser.add_argument('--min-objects', type=int, default=2)
    parser.add_argument('--max-objects', type=int, default=5)
    return parser.parse_args()


def main():
    args = parse_args()
    summary = make_toy_refer(
        args.out, num_train=args.num_train, num_val=args.num_val,
        num_testA=args.num_testA, num_testB=args.num_testB, seed=args.seed,
        min_size=args.min_size, max_size=args.max_size,
        min_objects=args.min_objects, max_objects=args.max_objects)
    print(f'Wrote {DATASET} to {args.out}')
    for split, stats in summary.items():
        print(f'{split:>6}: {stats["images"]} images, {stats["refs"]} refs, '
              f'{stats["sentences"]} sentences')


if __name__ == '__main__':
    main()
