"""tools/dataset_converters/make_toy_corpora.py: formats, determinism,
disjointness from the referring data, resuming and argument checks."""
import csv
import hashlib
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, make_toy_refer, run_env
from toy_world import load_tool, make_toy_corpora

corpora = load_tool('dataset_converters', 'make_toy_corpora.py')
SCRIPT = osp.join(REPO, 'tools', 'dataset_converters', 'make_toy_corpora.py')
KWARGS = dict(seed=3, num_captions=(30, 10), num_class_images=(8, 4))


@pytest.fixture(scope='module')
def corpora_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_corpora')
    summary = make_toy_corpora(root, **KWARGS)
    return root, summary


def _files(root):
    out = []
    for folder, _, names in os.walk(root):
        out += [osp.relpath(osp.join(folder, n), root) for n in names]
    return sorted(out)


def _read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f, delimiter='\t'))


def test_layout(corpora_root):
    root, summary = corpora_root
    assert summary['captions'] == {'train': 30, 'val': 10}
    assert {split: stats['images'] for split, stats in
            summary['classes'].items()} == {'train': 8, 'val': 4}
    files = _files(root)
    assert [f for f in files if not f.endswith('.png')] == [
        'captions/captions_train.csv', 'captions/captions_val.csv',
        'captions/settings.json', 'classes/instances_train.json',
        'classes/instances_val.json', 'classes/settings.json']
    assert sum(f.startswith('captions/images/cap_') for f in files) == 40
    assert sum(f.startswith('classes/images/cls_') for f in files) == 12
    assert not [f for f in files if '.tmp' in f]


def open_clip_csv_dataset():
    """open_clip_train's ``CsvDataset`` class, taken from its source: its
    module also imports webdataset's dependencies, which the CSV path does
    not need."""
    import ast
    import logging

    import open_clip_train.params
    import pandas as pd
    from PIL import Image
    from torch.utils.data import Dataset

    path = osp.join(osp.dirname(open_clip_train.params.__file__), 'data.py')
    tree = ast.parse(open(path).read())
    node = next(n for n in tree.body
                if isinstance(n, ast.ClassDef) and n.name == 'CsvDataset')
    namespace = dict(pd=pd, Image=Image, Dataset=Dataset, logging=logging)
    exec(compile(ast.Module([node], []), path, 'exec'), namespace)
    return namespace['CsvDataset']


def test_open_clip_reads_the_captions(corpora_root, monkeypatch):
    """open_clip's own CsvDataset with its default keys and separator
    (--csv-img-key filepath --csv-caption-key title, tab), run from the
    captions folder (paths are relative to it). Needs pandas."""
    pytest.importorskip('pandas')
    from open_clip import tokenize

    root, _ = corpora_root
    monkeypatch.chdir(root / 'captions')
    dataset = open_clip_csv_dataset()(
        'captions_val.csv', transforms=np.asarray, img_key='filepath',
        caption_key='title', tokenizer=tokenize)
    assert len(dataset) == 10
    image, tokens = dataset[0]
    assert image.ndim == 3 and image.shape[2] == 3
    assert tokens.shape == (77, ) and tokens[0] == 49406


def test_captions_are_plain_tab_separated_values(corpora_root):
    """What pandas.read_csv(sep='\\t') (open_clip) needs without quoting
    rules: one header, the same number of tab-separated fields on every
    line, no quotes; every path is an image under the captions folder."""
    root, _ = corpora_root
    for split, count in (('train', 30), ('val', 10)):
        lines = (root / 'captions' / f'captions_{split}.csv').read_text(
            encoding='utf-8').splitlines()
        assert lines[0].split('\t') == ['filepath', 'title', 'label', 'size']
        assert len(lines) == count + 1
        for line in lines[1:]:
            fields = line.split('\t')
            assert len(fields) == 4 and '"' not in line
            assert fields[1] == fields[1].strip() and fields[1]
            assert osp.isfile(root / 'captions' / fields[0])


def test_captions_describe_their_image(corpora_root):
    """Every caption names the shape (one of its nouns), and a colour or
    size word only when it is the image's; the shape has the label's
    colour in the image."""
    toy = corpora.toy_refer
    root, _ = corpora_root
    rows = _read_csv(root / 'captions' / 'captions_train.csv')
    assert list(rows[0]) == ['filepath', 'title', 'label', 'size']
    for row in rows:
        colour, shape = row['label'].split(' ')
        text = ' '.join(row['title'].lower().rstrip('.').split())
        assert any(f' {noun}' in f' {text}' for noun in toy.NOUNS[shape])
        for other in toy.COLOURS:
            assert (other in text.split()) <= (other == colour)
        for size, words in toy.SIZE_WORDS.items():
            if any(w in text.split() for w in words):
                assert size == row['size']
        img = cv2.imread(str(root / 'captions' / row['filepath']))[:, :, ::-1]
        painted = (img == toy.COLOURS[colour]).all(-1)
        half = corpora.CAPTION_HALF_SIZES[row['size']]
        # a filled shape of the row's size class (triangle: half a square)
        assert 1.5 * half[0]**2 < painted.sum() < 4.2 * half[1]**2


def test_class_instances_match_pixels(corpora_root):
    """pycocotools and our COCO reader read the instances; every mask is
    painted in its category's colour; categories are the 20 classes."""
    from pycocotools.coco import COCO

    from mmwris.datasets.refcoco import read_coco_file

    root, _ = corpora_root
    toy = corpora.toy_refer
    ann_file = str(root / 'classes' / 'instances_train.json')
    coco = read_coco_file(ann_file)
    assert [c['name'] for c in coco['categories']] == list(
        corpora.CLASS_NAMES)
    api = COCO(ann_file)
    assert len(api.getImgIds()) == 8
    names = {c['id']: c['name'] for c in coco['categories']}
    rle_seen = polygon_seen = 0
    for image_id in api.getImgIds():
        info = api.loadImgs(image_id)[0]
        img = cv2.imread(str(root / 'classes' / 'images' /
                             info['file_name']))[:, :, ::-1]
        anns = api.loadAnns(api.getAnnIds(imgIds=image_id))
        assert 2 <= len(anns) <= 8
        for ann in anns:
            mask = api.annToMask(ann).astype(bool)
            colour = toy.COLOURS[names[ann['category_id']].split(' ')[0]]
            assert (img[mask] == colour).all()
            assert mask.sum() == ann['area']
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0 and 'referring' not in str(ann)
            rle_seen += isinstance(ann['segmentation'], dict)
            polygon_seen += isinstance(ann['segmentation'], list)
    assert rle_seen and polygon_seen


def test_deterministic_and_resumable(corpora_root, tmp_path):
    """The same seed writes the same bytes; a rerun after a crash (an image
    and an annotation file gone) restores them; other settings are
    refused."""
    root, _ = corpora_root
    make_toy_corpora(tmp_path, **KWARGS)
    os.remove(tmp_path / 'captions' / 'images' / 'cap_000005.png')
    os.remove(tmp_path / 'classes' / 'instances_val.json')
    make_toy_corpora(tmp_path, **KWARGS)
    assert _files(tmp_path) == _files(root)
    for name in _files(root):
        assert (tmp_path / name).read_bytes() == (root / name).read_bytes(), \
            name
    with pytest.raises(ValueError, match='other settings'):
        make_toy_corpora(tmp_path, **dict(KWARGS, num_captions=(31, 10)))


def test_other_seed_differs(corpora_root, tmp_path):
    root, _ = corpora_root
    make_toy_corpora(tmp_path, **dict(KWARGS, seed=4), corpora=['captions'])
    name = osp.join('captions', 'captions_train.csv')
    assert (tmp_path / name).read_bytes() != (root / name).read_bytes()


def _pixel_hashes(folder):
    return {hashlib.sha256(cv2.imread(osp.join(folder, n)).tobytes()
                           ).hexdigest() for n in os.listdir(folder)}


def test_disjoint_from_the_referring_data(corpora_root, tmp_path):
    """No corpus image (nor its random state) is a referring image's, for
    the same seed and for others: the seed words differ (module doc)."""
    root, _ = corpora_root
    make_toy_refer(tmp_path, num_train=30, num_val=5, num_testA=3,
                   num_testB=3, seed=KWARGS['seed'])
    refer = _pixel_hashes(tmp_path / 'images')
    captions = _pixel_hashes(root / 'captions' / 'images')
    classes = _pixel_hashes(root / 'classes' / 'images')
    assert len(captions) == 40 and len(classes) == 12
    assert not refer & captions and not refer & classes
    assert not captions & classes
    pools = set()
    for seed in range(3):
        for index in range(60):
            pools.add(tuple(np.random.SeedSequence([seed, index]).pool))
            for corpus in corpora.CORPORA:
                rng = corpora.corpus_rng(seed, corpus, index)
                pools.add(tuple(rng.bit_generator.seed_seq.pool))
    assert len(pools) == 3 * 60 * 3


def test_config_classes_are_the_corpus_classes():
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets',
                                   'toy_captions.py'))
    assert cfg.toy_classes == list(corpora.CLASS_NAMES)


@pytest.mark.parametrize('kwargs, message', [
    (dict(seed=-1), 'seed'),
    (dict(seed=2**32), 'seed'),
    (dict(corpora=['masks']), 'corpora'),
    (dict(num_captions=(0, 5)), 'num_captions'),
    (dict(min_size=40), 'min_size'),
    (dict(min_size=120, max_size=100), 'min_size'),
    (dict(min_objects=3, max_objects=2), 'min_objects'),
])
def test_invalid_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_toy_corpora(tmp_path, **kwargs)
    assert not os.listdir(tmp_path)


def test_cli(tmp_path, monkeypatch):
    """The command line: a progress bar and a summary; a clear message on a
    bad argument."""
    cmd = [sys.executable, SCRIPT, '--out', str(tmp_path / 'out'),
           '--num-captions', '4', '2', '--num-class-images', '2', '1']
    proc = subprocess.run(cmd, cwd=REPO, env=run_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '6/6' in proc.stdout and '3/3' in proc.stdout
    assert "captions: {'train': 4, 'val': 2}" in proc.stdout
    monkeypatch.setattr(sys, 'argv', cmd[1:] + ['--seed', '-2'])
    with pytest.raises(SystemExit, match='make_toy_corpora: seed must be'):
        corpora.main()
