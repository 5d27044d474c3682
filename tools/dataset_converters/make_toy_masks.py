"""Generate a class-agnostic mask corpus (SA-1B-like) of toy shapes.

Layout::

    OUT/settings.json             # the generator settings (checked on resume)
    OUT/{split}/mask_000001.png   # RGB image
    OUT/{split}/mask_000001.json  # SA-1B record, see mmwris.datasets.toy_masks

Each image holds ``min_objects``-``max_objects`` shapes of the toy referring
data (circle, square, triangle, plus: ``make_toy_refer._polygon``), rotated
at random, of half size ``min_half``-``max_half`` pixels, in a toy colour or
a random one (at least ``MIN_COLOUR_DISTANCE`` from the mean background and
from the other shapes' colours), painted in order at random places, so
later shapes may occlude earlier ones. The background is the toy grey
gradient, tinted at random.
Every shape whose visible part keeps at least ``min_visible`` of its area
(and ``min_area`` pixels) is an instance; its mask is the visible part.

Image ``i`` (1-based over all splits, train first) is drawn from
``np.random.default_rng([seed, NAMESPACE, i])``: the toy referring data uses
``[seed, i]``, which numpy pads to ``[seed, i, 0]``; ``i >= 1``, so the two
never share a seed state (and the files are named ``mask_*``, not
``toy_*``). Images are written atomically (PNG, then
JSON); a restart skips images whose JSON exists.

Usage::

    python tools/dataset_converters/make_toy_masks.py --out data/toy_masks
"""
import argparse
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
from mmengine.utils import ProgressBar
from pycocotools import mask as mask_utils

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import make_toy_refer as toy  # noqa: E402  (shapes, colours, background)

from mmwris.datasets.toy_masks import make_mask_record  # noqa: E402
from mmwris.utils.io import atomic_write_bytes, atomic_write_json  # noqa

NAMESPACE = 0x4D41534B  # 'MASK': the seed namespace of this corpus
SPLITS = ('train', 'val')
SETTINGS_FILE = 'settings.json'
RANDOM_COLOUR_FRACTION = 0.5
MIN_COLOUR_DISTANCE = 90  # L1 over RGB


def _rotated(poly, cx, cy, angle):
    pts = np.asarray(poly, np.float64).reshape(-1, 2) - (cx, cy)
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]]) + (cx, cy)
    return [round(float(v), 2) for v in pts.ravel()]


def _colour(rng, used):
    """A toy colour or a random one, unlike the ``used`` colours (the
    background first): touching shapes stay distinguishable."""
    names = sorted(toy.COLOURS)
    for _ in range(100):
        if rng.random() >= RANDOM_COLOUR_FRACTION:
            name = names[int(rng.integers(len(names)))]
            colour = np.array(toy.COLOURS[name])
        else:
            colour = rng.integers(0, 256, 3)
        if all(np.abs(colour - u).sum() > MIN_COLOUR_DISTANCE for u in used):
            used.append(colour)
            return tuple(int(v) for v in colour)
    raise RuntimeError('cannot find a distinct colour')


def make_image(rng, cfg):
    """Draw one image: ``(rgb [H, W, 3] uint8, masks [N, H, W] uint8)``."""
    width = int(rng.integers(cfg['min_size'], cfg['max_size'] + 1))
    height = int(rng.integers(cfg['min_size'], cfg['max_size'] + 1))
    img = toy._background(rng, width, height).astype(np.int16)
    img = np.clip(img + rng.integers(-40, 41, 3), 0, 255).astype(np.uint8)
    used = [img.reshape(-1, 3).mean(0)]
    num = int(rng.integers(cfg['min_objects'], cfg['max_objects'] + 1))
    full, labels = [], np.zeros((height, width), np.int32)
    for k in range(num):
        shape = toy.CATEGORIES[int(rng.integers(len(toy.CATEGORIES)))]
        s = float(rng.uniform(cfg['min_half'], cfg['max_half']))
        s = min(s, (min(width, height) - 2 * toy.BORDER) / 2 - 1)
        cx = float(rng.uniform(s + toy.BORDER, width - s - toy.BORDER))
        cy = float(rng.uniform(s + toy.BORDER, height - s - toy.BORDER))
        poly = toy._polygon(shape, cx, cy, s)
        if rng.random() < 0.5:
            poly = _rotated(poly, cx, cy, rng.uniform(0, 2 * np.pi))
        rle = mask_utils.merge(mask_utils.frPyObjects([poly], height, width))
        mask = mask_utils.decode(rle).astype(bool)
        img[mask] = _colour(rng, used)
        labels[mask] = k + 1
        full.append(mask.sum())
    masks = []
    for k in range(num):
        visible = labels == k + 1
        area = int(visible.sum())
        if area >= cfg['min_area'] and area >= cfg['min_visible'] * full[k]:
            masks.append(visible)
    masks = np.stack(masks).astype(np.uint8) if masks else np.zeros(
        (0, height, width), np.uint8)
    return img, masks


def make_toy_masks(out_dir, num_train=2000, num_val=100, seed=0,
                   min_size=96, max_size=160, min_objects=3, max_objects=9,
                   min_half=5, max_half=24, min_visible=0.3, min_area=20,
                   progress=True):
    """Write the corpus to ``out_dir``; return per-split image and mask
    counts of the images written now and skipped (already there)."""
    cfg = dict(num_train=num_train, num_val=num_val, seed=seed,
               min_size=min_size, max_size=max_size,
               min_objects=min_objects, max_objects=max_objects,
               min_half=min_half, max_half=max_half,
               min_visible=min_visible, min_area=min_area)
    if not 2 * (min_half + toy.BORDER + 1) <= min_size <= max_size:
        raise ValueError('need 2 * (min_half + 3) <= min_size <= max_size')
    if not 1 <= min_objects <= max_objects:
        raise ValueError('need 1 <= min_objects <= max_objects')
    os.makedirs(out_dir, exist_ok=True)
    settings_path = osp.join(out_dir, SETTINGS_FILE)
    if osp.exists(settings_path):
        with open(settings_path) as f:
            old = json.load(f)
        if old != cfg:
            raise ValueError(f'{out_dir} was made with other settings '
                             f'{old}; use another folder.')
    else:
        atomic_write_json(settings_path, cfg, indent=1)
    counts = dict(zip(SPLITS, (num_train, num_val)))
    bar = ProgressBar(num_train + num_val, file=sys.stderr) \
        if progress else None
    summary, index = {}, 0
    for split in SPLITS:
        split_dir = osp.join(out_dir, split)
        os.makedirs(split_dir, exist_ok=True)
        stats = dict(images=0, masks=0, skipped=0)
        for _ in range(counts[split]):
            index += 1
            stem = osp.join(split_dir, 'mask_%06d' % index)
            if osp.exists(stem + '.json'):
                stats['skipped'] += 1
            else:
                rng = np.random.default_rng([seed, NAMESPACE, index])
                img, masks = make_image(rng, cfg)
                png = cv2.imencode('.png', img[:, :, ::-1])[1].tobytes()
                atomic_write_bytes(stem + '.png', png)
                record = make_mask_record(index, osp.basename(stem) + '.png',
                                          masks)
                atomic_write_json(stem + '.json', record)
                stats['images'] += 1
                stats['masks'] += len(masks)
            if bar is not None:
                bar.update()
        summary[split] = stats
    if bar is not None:
        sys.stderr.write('\n')
    return summary


def parse_args():
    parser = argparse.ArgumentParser(
        description='Generate a class-agnostic toy mask corpus (SA-1B-like).')
    parser.add_argument('--out', default='data/toy_masks')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-size', type=int, default=96)
    parser.add_argument('--max-size', type=int, default=160)
    parser.add_argument('--min-objects', type=int, default=3)
    parser.add_argument('--max-objects', type=int, default=9)
    parser.add_argument('--min-half', type=float, default=5)
    parser.add_argument('--max-half', type=float, default=24)
    return parser.parse_args()


def main():
    args = parse_args()
    summary = make_toy_masks(
        args.out, num_train=args.num_train, num_val=args.num_val,
        seed=args.seed, min_size=args.min_size, max_size=args.max_size,
        min_objects=args.min_objects, max_objects=args.max_objects,
        min_half=args.min_half, max_half=args.max_half)
    print(f'Wrote the toy mask corpus to {args.out}')
    for split, stats in summary.items():
        print(f'{split:>5}: {stats["images"]} images ({stats["masks"]} '
              f'masks) written, {stats["skipped"]} already there')


if __name__ == '__main__':
    main()
