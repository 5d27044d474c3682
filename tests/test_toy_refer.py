"""Tests for tools/dataset_converters/make_toy_refer.py."""
import collections
import importlib.util
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCRIPT = osp.join(ROOT, 'tools', 'dataset_converters', 'make_toy_refer.py')
COUNTS = {'train': 20, 'val': 5, 'testA': 5, 'testB': 5}
KWARGS = dict(num_train=20, num_val=5, num_testA=5, num_testB=5, seed=3)


def _load_module():
    spec = importlib.util.spec_from_file_location('make_toy_refer', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toy = _load_module()


def _read(out_dir):
    with open(osp.join(out_dir, 'toyref', 'instances.json')) as f:
        instances = json.load(f)
    with open(osp.join(out_dir, 'toyref', 'refs(synth).p'), 'rb') as f:
        refs = pickle.load(f)
    return instances, refs


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('toy_refer'))
    summary = toy.make_toy_refer(out_dir, **KWARGS)
    instances, refs = _read(out_dir)
    return out_dir, summary, instances, refs


def _decode(seg, height, width):
    if isinstance(seg, dict):
        return mask_utils.decode(seg)
    rles = mask_utils.frPyObjects(seg, height, width)
    return mask_utils.decode(mask_utils.merge(rles))


def test_layout(dataset):
    out_dir, summary, instances, refs = dataset
    assert sorted(os.listdir(out_dir)) == ['images', 'toyref']
    assert sorted(os.listdir(osp.join(out_dir, 'toyref'))) == [
        'instances.json', 'refs(synth).p']
    files = sorted(os.listdir(osp.join(out_dir, 'images')))
    assert files == sorted(img['file_name'] for img in instances['images'])
    assert set(instances) == {'info', 'licenses', 'images', 'annotations',
                              'categories'}
    assert instances['info']['description'] == (
        'mmwris synthetic toy referring dataset')
    assert [c['name'] for c in instances['categories']] == [
        'circle', 'square', 'triangle', 'plus']
    assert [c['id'] for c in instances['categories']] == [1, 2, 3, 4]
    for img in instances['images']:
        assert img['file_name'] == 'toy_%06d.png' % img['id']
        assert img['license'] == 1
        assert 96 <= img['height'] <= 160 and 96 <= img['width'] <= 160
    assert summary['total'] == {
        'images': len(instances['images']), 'refs': len(refs),
        'sentences': sum(len(r['sentences']) for r in refs)}


def test_deterministic(dataset, tmp_path):
    out_dir = dataset[0]
    toy.make_toy_refer(str(tmp_path), **KWARGS)
    names = [osp.join('toyref', 'instances.json'),
             osp.join('toyref', 'refs(synth).p')]
    names += [osp.join('images', n)
              for n in os.listdir(osp.join(out_dir, 'images'))]
    for name in names:
        with open(osp.join(out_dir, name), 'rb') as a, \
                open(osp.join(tmp_path, name), 'rb') as b:
            assert a.read() == b.read(), name


def test_other_seed_differs(dataset, tmp_path):
    toy.make_toy_refer(str(tmp_path), **{**KWARGS, 'seed': 4})
    assert _read(tmp_path)[1] != dataset[3]


def _plain(obj):
    if isinstance(obj, dict):
        return all(type(k) is str and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return type(obj) in (int, float, str)


def test_refs_consistent(dataset):
    _, _, instances, refs = dataset
    anns = {a['id']: a for a in instances['annotations']}
    assert len(anns) == len(instances['annotations'])
    assert _plain(refs)
    assert len({r['ref_id'] for r in refs}) == len(refs)
    sent_ids = [s['sent_id'] for r in refs for s in r['sentences']]
    assert len(set(sent_ids)) == len(sent_ids)
    assert sorted(r['ann_id'] for r in refs) == sorted(anns)
    for ref in refs:
        ann = anns[ref['ann_id']]
        assert ann['image_id'] == ref['image_id']
        assert ann['category_id'] == ref['category_id']
        assert ref['file_name'] == 'toy_%06d_%d.png' % (ref['image_id'],
                                                         ref['ann_id'])
        assert ref['sent_ids'] == [s['sent_id'] for s in ref['sentences']]
        assert 2 <= len(ref['sentences']) <= 4
        sents = [s['sent'] for s in ref['sentences']]
        assert len(set(sents)) == len(sents)
        for sent in ref['sentences']:
            assert sent['sent'] == sent['sent'].lower()
            assert sent['tokens'] == sent['sent'].split()
            assert sent['sent'] == ' '.join(
                sent['raw'].lower().rstrip('.').split())


def test_splits(dataset):
    _, summary, instances, refs = dataset
    split_images = collections.defaultdict(set)
    for ref in refs:
        split_images[ref['split']].add(ref['image_id'])
    assert {s: len(ids) for s, ids in split_images.items()} == COUNTS
    assert {s: summary[s]['images'] for s in COUNTS} == COUNTS
    assert set().union(*split_images.values()) == {
        img['id'] for img in instances['images']}
    cats = {r['ann_id']: r['category_id'] for r in refs}
    per_image = collections.Counter(a['image_id']
                                    for a in instances['annotations'])
    assert all(2 <= n <= 5 for n in per_image.values())
    for split, allowed in (('testA', {1, 2}), ('testB', {3, 4})):
        found = {cats[r['ann_id']] for r in refs if r['split'] == split}
        assert found <= allowed and found
    assert {r['category_id'] for r in refs if r['split'] == 'train'} == {
        1, 2, 3, 4}


def test_masks_match_pixels(dataset):
    out_dir, _, instances, _ = dataset
    images = {img['id']: img for img in instances['images']}
    kinds = collections.Counter()
    for ann in instances['annotations']:
        info = images[ann['image_id']]
        h, w = info['height'], info['width']
        seg = ann['segmentation']
        kinds['rle' if isinstance(seg, dict) else 'polygon'] += 1
        if isinstance(seg, dict):
            assert seg['size'] == [h, w] and isinstance(seg['counts'], str)
        else:
            assert all(isinstance(v, float) for v in seg[0])
        mask = _decode(seg, h, w).astype(bool)
        assert ann['area'] == mask.sum() > 0
        assert ann['iscrowd'] == 0
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any()
                    or mask[:, -1].any())
        ys, xs = np.nonzero(mask)
        x, y, bw, bh = ann['bbox']
        assert (x, y, bw, bh) == (xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                  ys.max() - ys.min() + 1)

        img = np.asarray(Image.open(osp.join(out_dir, 'images',
                                             info['file_name'])).convert('RGB'))
        assert img.shape == (h, w, 3)
        x0, y0 = max(int(x) - 2, 0), max(int(y) - 2, 0)
        x1, y1 = int(x + bw) + 2, int(y + bh) + 2
        crop = img[y0:y1, x0:x1].astype(int)
        saturated = crop.max(-1) - crop.min(-1) > 80
        colours, counts = np.unique(crop[saturated], axis=0,
                                    return_counts=True)
        colour = colours[counts.argmax()]
        painted = np.zeros_like(mask)
        painted[y0:y1, x0:x1] = (crop == colour).all(-1)
        iou = (painted & mask).sum() / (painted | mask).sum()
        assert iou > 0.9, (ann['id'], iou)
    assert kinds['rle'] > 0 and kinds['polygon'] > 0


def test_sentences_unique_per_image(dataset):
    refs = dataset[3]
    seen = collections.defaultdict(dict)
    for ref in refs:
        for sent in ref['sentences']:
            owner = seen[ref['image_id']].setdefault(sent['sent'],
                                                     ref['ref_id'])
            assert owner == ref['ref_id'], sent['sent']


def test_cli(tmp_path):
    out_dir = tmp_path / 'toy'
    result = subprocess.run(
        [sys.executable, SCRIPT, '--out', str(out_dir), '--num-train', '4',
         '--num-val', '1', '--num-testA', '1', '--num-testB', '2',
         '--seed', '1', '--min-size', '100', '--max-size', '120'],
        capture_output=True, text=True, check=True, timeout=60)
    assert 'train: 4 images' in result.stdout
    assert 'testB: 2 images' in result.stdout
    assert 'total: 8 images' in result.stdout
    instances, refs = _read(out_dir)
    assert len(instances['images']) == 8
    assert all(100 <= img['width'] <= 120 for img in instances['images'])
    assert not [n for n in os.listdir(out_dir / 'images')
                if not n.endswith('.png')]


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError):
        toy.make_toy_refer(str(tmp_path), min_size=20)
    with pytest.raises(ValueError):
        toy.make_toy_refer(str(tmp_path), min_objects=3, max_objects=2)
