"""The Hugging Face converters (tools/dataset_converters/refer_from_parquet.py
for jxu124/refcoco*, refcoco_m.py for moondream/refcoco-m) on parquet files
written in the published schemas from the real RefCOCOg-umd subset
(tests/data/refcocog_umd), then through tools/train.py and tools/test.py."""
import glob
import importlib.util
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import DATA, REPO, run_env

pa = pytest.importorskip('pyarrow')
pq = pytest.importorskip('pyarrow.parquet')
mask_utils = pytest.importorskip('pycocotools.mask')

CONVERTERS = osp.join(REPO, 'tools', 'dataset_converters')
TINY = osp.join(REPO, 'configs', 'tris',
                'tris_clip-tiny_1xb32-3k_toyrefer-128x128.py')
CENTRE_M = osp.join(REPO, 'configs', 'baselines',
                    'centerprior_gaussian_1xb16-eval_refcoco-unc+refcoco-m-'
                    '320x320.py')
# jxu124/refcoco, jxu124/refcocoplus, jxu124/refcocog (dataset card).
SENTENCE = pa.struct([('raw', pa.string()), ('sent', pa.string()),
                      ('sent_id', pa.int64()), ('tokens', pa.list_(pa.string()))])
JXU124 = pa.schema([
    ('sent_ids', pa.list_(pa.int64())), ('file_name', pa.string()),
    ('ann_id', pa.int64()), ('ref_id', pa.int64()), ('image_id', pa.int64()),
    ('split', pa.string()), ('sentences', pa.list_(SENTENCE)),
    ('category_id', pa.int64()), ('raw_anns', pa.string()),
    ('raw_image_info', pa.string()), ('raw_sentences', pa.string()),
    ('image_path', pa.string()), ('bbox', pa.list_(pa.float64())),
    ('captions', pa.list_(pa.string())), ('global_image_id', pa.string())])
# moondream/refcoco-m (dataset card).
REFCOCO_M = pa.schema([
    ('image', pa.struct([('bytes', pa.binary()), ('path', pa.string())])),
    ('image_id', pa.int64()), ('file_name', pa.string()),
    ('samples', pa.list_(pa.struct([
        ('id', pa.int64()), ('image_id', pa.int64()),
        ('category', pa.string()), ('supercategory', pa.string()),
        ('label', pa.string()), ('sentences', pa.list_(pa.string())),
        ('bbox', pa.list_(pa.float32())),
        ('mask', pa.struct([('counts', pa.string()),
                            ('size', pa.list_(pa.int32()))]))])))])
HF_SPLIT = dict(train='train', val='validation', test='test')


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(CONVERTERS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def originals():
    with open(osp.join(DATA, 'refcocog_umd', 'refs(umd).p'), 'rb') as f:
        refs = pickle.load(f)  # the project's own test file
    with open(osp.join(DATA, 'refcocog_umd', 'instances.json')) as f:
        return refs, json.load(f)


def jxu124_row(ref, coco):
    ann = next(a for a in coco['annotations'] if a['id'] == ref['ann_id'])
    img = next(i for i in coco['images'] if i['id'] == ref['image_id'])
    return dict(
        ref, raw_anns=json.dumps(ann), raw_image_info=json.dumps(img),
        raw_sentences=json.dumps(ref['sentences']),
        image_path=f'coco/train2014/{img["file_name"]}', bbox=ann['bbox'],
        captions=[s['sent'] for s in ref['sentences']],
        global_image_id=f'coco.{ref["image_id"]}')


def write_jxu124(folder, rows=None):
    """One parquet file per Hugging Face split, named as on the Hub."""
    refs, coco = originals()
    rows = rows or [jxu124_row(ref, coco) for ref in refs]
    folder.mkdir(parents=True, exist_ok=True)
    for split, hf in HF_SPLIT.items():
        part = [r for r in rows if r.get('hf', HF_SPLIT.get(r['split'])) == hf]
        pq.write_table(pa.Table.from_pylist(part, schema=JXU124),
                       folder / f'{hf}-00000-of-00001-0123456789abcdef.parquet')
    return folder


def polygon_rle(ann, img):
    rle = mask_utils.merge(mask_utils.frPyObjects(
        ann['segmentation'], img['height'], img['width']))
    return dict(counts=rle['counts'].decode(), size=list(rle['size']))


def write_refcoco_m(path):
    """The val refs of the subset as RefCOCO-M rows (placeholder JPEGs of
    the recorded sizes, RLE masks from the polygons)."""
    refs, coco = originals()
    cats = {c['id']: c for c in coco['categories']}
    rows, rng = [], np.random.default_rng(0)
    for ref in [r for r in refs if r['split'] == 'val']:
        ann = next(a for a in coco['annotations'] if a['id'] == ref['ann_id'])
        img = next(i for i in coco['images'] if i['id'] == ref['image_id'])
        pixels = rng.integers(0, 255, (img['height'], img['width'], 3),
                              dtype=np.uint8)
        cat = cats[ann['category_id']]
        rows.append(dict(
            image=dict(bytes=cv2.imencode('.jpg', pixels)[1].tobytes(),
                       path=img['file_name']),
            image_id=img['id'], file_name=img['file_name'], samples=[dict(
                id=ann['id'], image_id=img['id'], category=cat['name'],
                supercategory=cat['supercategory'], label=cat['name'],
                sentences=[s['sent'] for s in ref['sentences']],
                bbox=ann['bbox'], mask=polygon_rle(ann, img))]))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=REFCOCO_M), path)
    return rows


def run(cmd):
    proc = subprocess.run(cmd, cwd=REPO, env=run_env(1), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def read_converted(out, split_by='umd'):
    with open(out / f'refs({split_by}).p', 'rb') as f:
        refs = pickle.load(f)  # written by the converter under test
    return refs, json.loads((out / 'instances.json').read_text())


def test_round_trip_through_the_command_line(tmp_path):
    refs, coco = originals()
    src = write_jxu124(tmp_path / 'hf')
    proc = run([sys.executable, osp.join(CONVERTERS, 'refer_from_parquet.py'),
                str(src), '--out', str(tmp_path / 'out'), '--split-by', 'umd',
                '--coco-instances', osp.join(DATA, 'refcocog_umd',
                                             'instances.json')])
    got_refs, got = read_converted(tmp_path / 'out')
    assert got == coco
    # One file per split: the splits come in file order, each in its order.
    assert got_refs == [r for split in ('train', 'val', 'test')
                        for r in refs if r['split'] == split]
    lines = proc.stdout.splitlines()
    for split, counts in (('train', '5 9 5'), ('val', '5 10 5'),
                          ('test', '5 9 5')):
        assert f'{split} {counts}' in [' '.join(line.split()) for line in lines]
    assert sorted(os.listdir(tmp_path / 'out')) == ['instances.json',
                                                  'refs(umd).p']


def test_round_trip_without_coco_keeps_the_referred_instances(tmp_path,
                                                              capsys):
    refs, coco = originals()
    load_tool('refer_from_parquet').main([
        str(write_jxu124(tmp_path / 'hf')), '--out', str(tmp_path / 'out'),
        '--split-by', 'umd'])
    got_refs, got = read_converted(tmp_path / 'out')
    assert sorted(got_refs, key=lambda r: r['ref_id']) == sorted(
        refs, key=lambda r: r['ref_id'])
    ann_ids = {r['ann_id'] for r in refs}
    key = lambda x: x['id']  # noqa: E731
    assert sorted(got['images'], key=key) == sorted(coco['images'], key=key)
    assert sorted(got['annotations'], key=key) == sorted(
        [a for a in coco['annotations'] if a['id'] in ann_ids], key=key)


def test_polygon_from_coco_and_missing_annotation_error(tmp_path):
    refs, coco = originals()
    rows = [jxu124_row(ref, coco) for ref in refs]
    rows[0]['raw_anns'] = json.dumps(dict(json.loads(rows[0]['raw_anns']),
                                          segmentation=[]))
    rows[6]['raw_anns'] = None
    src = write_jxu124(tmp_path / 'hf', rows)
    tool = load_tool('refer_from_parquet')
    with pytest.raises(KeyError) as error:
        tool.main([str(src), '--out', str(tmp_path / 'out'), '--split-by',
                   'umd'])
    for row in (rows[0], rows[6]):
        assert f'({row["ref_id"]}, {row["ann_id"]}, ' in str(error.value)
    assert '--coco-instances' in str(error.value)
    assert not (tmp_path / 'out').exists()
    coco_file = osp.join(DATA, 'refcocog_umd', 'instances.json')
    tool.main([str(src), '--out', str(tmp_path / 'out'), '--split-by', 'umd',
               '--coco-instances', coco_file])
    assert read_converted(tmp_path / 'out')[1] == coco


@pytest.mark.parametrize('fault', ['sent_id', 'split', 'corrupt'])
def test_clear_errors_name_the_file_and_record(tmp_path, fault):
    refs, coco = originals()
    rows = [jxu124_row(ref, coco) for ref in refs]
    a, b = [i for i, r in enumerate(rows) if r['split'] == 'val'][:2]
    if fault == 'sent_id':  # rows 0 and 1 of the validation file
        sentences = [dict(s) for s in rows[b]['sentences']]
        sentences[0]['sent_id'] = rows[a]['sent_ids'][0]
        rows[b] = dict(rows[b], sentences=sentences,
                       sent_ids=[s['sent_id'] for s in sentences])
    elif fault == 'split':
        rows[b] = dict(rows[b], split='dev', hf='validation')
    src = write_jxu124(tmp_path / 'hf', rows)
    val_file = glob.glob(str(src / 'validation-*.parquet'))[0]
    if fault == 'corrupt':
        with open(val_file, 'r+b') as f:
            f.seek(-100, os.SEEK_END)
            f.write(b'\0' * 100)
    expected = dict(
        sent_id=f'row 1 (ref_id={rows[b]["ref_id"]}): duplicated sent_id '
                f'{rows[a]["sent_ids"][0]} (first in {val_file}, row 0',
        split=f'row 1 (ref_id={rows[b]["ref_id"]}): unknown split name '
              "'dev'",
        corrupt='is not a readable parquet file')[fault]
    with pytest.raises(ValueError) as error:
        load_tool('refer_from_parquet').main([
            str(src), '--out', str(tmp_path / 'out'), '--split-by', 'umd'])
    assert val_file in str(error.value)
    assert expected in str(error.value)
    assert not (tmp_path / 'out').exists()


def test_refcoco_m_converts_with_rle_masks_and_images(tmp_path, capsys):
    rows = write_refcoco_m(tmp_path / 'hf' / 'validation-00000-of-00001.parquet')
    load_tool('refcoco_m').main([str(tmp_path / 'hf'), '--out',
                                 str(tmp_path / 'out')])
    assert 'val 5 10 5' in ' '.join(capsys.readouterr().out.split())
    refs, coco = read_converted(tmp_path / 'out', 'unc')
    anns = {a['id']: a for a in coco['annotations']}
    images = {i['id']: i for i in coco['images']}
    for row, ref in zip(rows, refs):
        sample = row['samples'][0]
        assert ref['split'] == 'val' and ref['ref_id'] == sample['id']
        assert [s['sent'] for s in ref['sentences']] == sample['sentences']
        assert anns[ref['ann_id']]['segmentation'] == sample['mask']
        img = images[ref['image_id']]
        photo = cv2.imread(str(tmp_path / 'out' / 'images' / img['file_name']))
        assert photo.shape[:2] == (img['height'], img['width'])
    sent_ids = [i for ref in refs for i in ref['sent_ids']]
    assert sent_ids == list(range(len(sent_ids)))


def test_refcoco_m_rejects_another_split_and_duplicates(tmp_path):
    tool = load_tool('refcoco_m')
    path = tmp_path / 'hf' / 'test-00000-of-00001.parquet'
    write_refcoco_m(path)
    with pytest.raises(ValueError, match='unknown split name "test"'):
        tool.main([str(path), '--out', str(tmp_path / 'out')])
    twice = tmp_path / 'twice'
    write_refcoco_m(twice / 'validation-00000-of-00002.parquet')
    write_refcoco_m(twice / 'validation-00001-of-00002.parquet')
    with pytest.raises(ValueError, match='00001-of-00002.parquet, row 0: '
                       'duplicated image_id'):
        tool.main([str(twice), '--out', str(tmp_path / 'out')])


def test_converted_data_trains_and_tests_with_the_tools(tmp_path,
                                                        real_refer_root):
    """Parquet -> refer files -> tools/train.py (1 iteration of tiny TRIS)
    -> tools/test.py on RefCOCO-M; and the RefCOCO-M evaluation config
    (RefCOCO val beside RefCOCO-M val) through tools/test.py."""
    root = tmp_path / 'data'
    coco_file = osp.join(DATA, 'refcocog_umd', 'instances.json')
    load_tool('refer_from_parquet').main([
        str(write_jxu124(tmp_path / 'hf')), '--out', str(root / 'refcoco'),
        '--split-by', 'unc', '--coco-instances', coco_file])
    write_refcoco_m(tmp_path / 'hf-m' / 'validation-00000-of-00001.parquet')
    load_tool('refcoco_m').main([str(tmp_path / 'hf-m'), '--out',
                                 str(root / 'refcoco-m')])
    images = root / 'images' / 'mscoco' / 'images'
    images.mkdir(parents=True)
    os.symlink(real_refer_root / 'images', images / 'train2014')
    refcoco = [f'data_root={root}', 'ann_file=refcoco/instances.json',
               'refs_file=refcoco/refs(unc).p',
               'data_prefix.img_path=images/mscoco/images/train2014']
    run([sys.executable, 'tools/train.py', TINY, '--work-dir',
         str(tmp_path / 'train'), '--cfg-options', 'train_cfg.max_iters=1',
         'train_cfg.val_interval=1', 'train_dataloader.batch_size=4']
        + [f'{loader}_dataloader.dataset.{o}' for o in refcoco
           for loader in ('train', 'val')])
    assert osp.isfile(tmp_path / 'train' / 'iter_1.pth')
    run([sys.executable, 'tools/test.py', TINY,
         str(tmp_path / 'train' / 'iter_1.pth'), '--work-dir',
         str(tmp_path / 'test_m'), '--cfg-options',
         'test_dataloader.dataset.type=RefCOCOMDataset',
         'test_dataloader.dataset.split=val',
         f'test_dataloader.dataset.data_root={root}/refcoco-m',
         'test_dataloader.dataset.ann_file=instances.json',
         'test_dataloader.dataset.refs_file=refs(unc).p'])
    metrics = read_metrics(tmp_path / 'test_m')
    assert 0 <= metrics['refcoco-m_val/mIoU'] <= 100
    run([sys.executable, 'tools/test.py', CENTRE_M, '--work-dir',
         str(tmp_path / 'centre'), '--cfg-options',
         'test_dataloader.num_workers=0',
         'test_dataloader.persistent_workers=False',
         f'test_dataloader.dataset.datasets.0.data_root={root}',
         f'test_dataloader.dataset.datasets.1.data_root={root}'])
    metrics = read_metrics(tmp_path / 'centre')
    for split in ('val', 'refcoco-m_val'):
        assert 0 <= metrics[f'{split}/mIoU'] <= 100
    # Same images, same masks (RLE of the polygons): the same numbers.
    assert metrics['val/mIoU'] == pytest.approx(
        metrics['refcoco-m_val/mIoU'], abs=0.5)


def read_metrics(work_dir) -> dict:
    files = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.load(f)
