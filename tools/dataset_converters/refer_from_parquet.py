"""Convert the Hugging Face RefCOCO mirrors (``jxu124/refcoco``,
``jxu124/refcocoplus``, ``jxu124/refcocog``: parquet, one row per ref) to the
refer-toolkit layout read by ``RefCOCODataset``: ``refs(<splitBy>).p`` +
``instances.json``.

Example (README, "Data preparation")::

    python tools/dataset_converters/refer_from_parquet.py \
        data/hf/refcoco/data --out data/refcoco --split-by unc \
        --coco-instances data/annotations/instances_train2014.json

Each row gives the refer ref (``ref_id, ann_id, image_id, split, sent_ids,
sentences, category_id, file_name``), its COCO annotation (``raw_anns``, a
JSON string) and its COCO image record (``raw_image_info``). The refer split
name is the row's ``split`` (the Hugging Face split of the file only has to
agree with it: ``train`` -> train, ``validation`` -> val, ``test`` -> testA
or test, ``testB`` -> testB). With ``--coco-instances`` (COCO's
``instances_train2014.json``) the annotations without a polygon are taken
from COCO by ``ann_id`` and ``instances.json`` gets COCO's ``info``,
``licenses``, ``categories`` and every instance of the referred images, as
the refer toolkit's files have. Needs ``pyarrow`` (imported here only).
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys
from collections import OrderedDict, defaultdict

from mmwris.datasets.refcoco import REFER_SPLITS, read_coco_file

# Hugging Face split names (and refer's own) -> refer split name.
SPLIT_NAMES = dict({s: s for s in REFER_SPLITS}, validation='val')
# The refer splits a file of each Hugging Face split may hold.
HF_FILE_SPLITS = dict(train=('train', ), validation=('val', ),
                      test=('test', 'testA'), testB=('testB', ))
REQUIRED_COLUMNS = ('ref_id', 'ann_id', 'image_id', 'split', 'sent_ids',
                    'sentences', 'category_id', 'file_name', 'raw_anns',
                    'raw_image_info')
REF_FIELDS = ('image_id', 'split', 'sentences', 'file_name', 'category_id',
              'ann_id', 'sent_ids', 'ref_id')
SENTENCE_FIELDS = ('tokens', 'raw', 'sent_id', 'sent')


def first_ids(ids, limit=20):
    more = f' ... ({len(ids) - limit} more)' if len(ids) > limit else ''
    return f'{list(ids)[:limit]}{more}'


def split_order(path):
    """Sort key: train, validation, test, testB files, then the rest."""
    order = tuple(HF_FILE_SPLITS) + (None, )
    return order.index(hf_split_of(path)), osp.basename(path)


def parquet_files(inputs):
    """The parquet files named, or those in the folders named (train,
    validation, test, testB, then other names)."""
    files = []
    for path in inputs:
        if osp.isdir(path):
            found = sorted((
                osp.join(root, name) for root, _, names in os.walk(path)
                for name in names if name.endswith('.parquet')),
                key=split_order)
            if not found:
                raise FileNotFoundError(f'No .parquet file in {path}.')
            files += found
        elif osp.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'{path} does not exist.')
    return files


def read_parquet(path, columns):
    """The rows of a parquet file as dicts; a clear error for a file that
    is not parquet or lacks columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f'{path} is not a readable parquet file '
                         f'({type(e).__name__}: {e}).') from e
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f'{path} lacks the columns {missing} (it has '
                         f'{table.column_names}); is it the right dataset?')
    return table.to_pylist()


def json_column(row, column, path, index, where):
    """A JSON-string column of one row (None when null or empty)."""
    text = row.get(column)
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f'{path}, row {index} ({where}): column {column} is '
                         f'not valid JSON: {e}') from e


def hf_split_of(path):
    """The Hugging Face split in a file name like
    ``validation-00000-of-00001-xxx.parquet`` (None if not recognised)."""
    name = osp.basename(path).split('-')[0]
    return name if name in HF_FILE_SPLITS else None


def refer_split(value, path, index, where):
    split = SPLIT_NAMES.get(value)
    if split is None:
        raise ValueError(
            f'{path}, row {index} ({where}): unknown split name {value!r}; '
            f'expected a refer split {REFER_SPLITS} or a Hugging Face split '
            f'{tuple(HF_FILE_SPLITS)}.')
    expected = HF_FILE_SPLITS.get(hf_split_of(path))
    if expected is not None and split not in expected:
        raise ValueError(
            f'{path}, row {index} ({where}): split {value!r} does not belong '
            f'in a "{hf_split_of(path)}" file (expected {expected}).')
    return split


def progress(items, total, what):
    """Iterate ``items`` with mmengine's progress bar (on stderr) when
    there are many."""
    if total < 2000:
        yield from items
        return
    from mmengine.utils import ProgressBar
    bar = ProgressBar(total, file=sys.stderr)
    print(what, file=sys.stderr)
    for item in items:
        yield item
        bar.update()
    print(file=sys.stderr)


def convert_row(row, path, index):
    """(ref, annotation or None, image record) of one parquet row."""
    where = f'ref_id={row.get("ref_id")}'
    ref = {k: row[k] for k in REF_FIELDS}
    ref['split'] = refer_split(row['split'], path, index, where)
    ref['sentences'] = [{k: sent[k] for k in SENTENCE_FIELDS if k in sent}
                        for sent in row['sentences']]
    if [s['sent_id'] for s in ref['sentences']] != list(ref['sent_ids']):
        raise ValueError(f'{path}, row {index} ({where}): sent_ids '
                         f'{ref["sent_ids"]} do not match its sentences.')
    ann = json_column(row, 'raw_anns', path, index, where)
    if isinstance(ann, list):  # a list of annotations: take the ref's own
        ann = next((a for a in ann if a.get('id') == row['ann_id']), None)
    if ann is not None and ann.get('id', row['ann_id']) != row['ann_id']:
        raise ValueError(f'{path}, row {index} ({where}): raw_anns is '
                         f'annotation {ann.get("id")}, not ann_id '
                         f'{row["ann_id"]}.')
    image = json_column(row, 'raw_image_info', path, index, where)
    if not image or image.get('id', row['image_id']) != row['image_id']:
        raise ValueError(f'{path}, row {index} ({where}): raw_image_info '
                         f'is not the record of image_id {row["image_id"]}.')
    return ref, ann, image


def load_coco(path):
    if path is None:
        return None
    print(f'reading {path} ...', file=sys.stderr)
    return read_coco_file(path)


def convert(files, coco=None, coco_path=None):
    """refs (list) and instances (dict) from the parquet ``files``."""
    refs, anns, images = [], OrderedDict(), OrderedDict()
    seen_refs, seen_sents = {}, {}
    missing = []  # (ref_id, ann_id, file) without a polygon anywhere
    coco_anns = {a['id']: a for a in coco['annotations']} if coco else {}
    for path in files:
        rows = read_parquet(path, REQUIRED_COLUMNS)
        for index, row in progress(enumerate(rows), len(rows),
                                   f'converting {path}'):
            ref, ann, image = convert_row(row, path, index)
            rid = ref['ref_id']
            if rid in seen_refs:
                raise ValueError(f'{path}, row {index}: duplicated ref_id '
                                 f'{rid} (first in {seen_refs[rid]}).')
            seen_refs[rid] = f'{path}, row {index}'
            for sent_id in ref['sent_ids']:
                if sent_id in seen_sents:
                    raise ValueError(
                        f'{path}, row {index} (ref_id={rid}): duplicated '
                        f'sent_id {sent_id} (first in {seen_sents[sent_id]}).')
                seen_sents[sent_id] = f'{path}, row {index} (ref_id={rid})'
            if not (ann and ann.get('segmentation')):
                ann = coco_anns.get(ref['ann_id'])
            if ann is None:
                missing.append((rid, ref['ann_id'], path))
                continue
            refs.append(ref)
            anns.setdefault(ann['id'], ann)
            images.setdefault(image['id'], image)
    if missing:
        source = (f'nor in {coco_path}' if coco_path else
                  '(pass COCO\'s instances_train2014.json with '
                  '--coco-instances)')
        raise KeyError(
            f'{len(missing)} refs have no segmentation in raw_anns '
            f'{source}: (ref_id, ann_id, file) {first_ids(missing)}.')
    instances = dict(images=list(images.values()),
                     annotations=list(anns.values()))
    if coco is not None:
        instances = with_coco_records(instances, coco)
    return refs, instances


def with_coco_records(instances, coco):
    """Add COCO's info / licenses / categories and every instance of the
    referred images, in COCO's order (the refer toolkit's instances.json)."""
    image_ids = {img['id'] for img in instances['images']}
    own = {img['id']: img for img in instances['images']}
    coco_images = [img for img in coco.get('images', [])
                   if img['id'] in image_ids]
    known = {img['id'] for img in coco_images}
    out = {k: coco[k] for k in ('info', 'licenses', 'categories') if k in coco}
    out['images'] = coco_images + [img for i, img in own.items()
                                   if i not in known]
    referred = {a['id']: a for a in instances['annotations']}
    coco_anns = [referred.get(a['id'], a) for a in coco['annotations']
                 if a['image_id'] in image_ids]
    known = {a['id'] for a in coco_anns}
    out['annotations'] = coco_anns + [a for i, a in referred.items()
                                      if i not in known]
    return out


def write_refer(out_dir, refs, instances, split_by):
    """Write ``instances.json`` and ``refs(<split_by>).p``; their paths."""
    from mmwris.utils.io import atomic_write_bytes, atomic_write_json
    os.makedirs(out_dir, exist_ok=True)
    ann_path = osp.join(out_dir, 'instances.json')
    refs_path = osp.join(out_dir, f'refs({split_by}).p')
    atomic_write_json(ann_path, instances)
    atomic_write_bytes(refs_path, pickle.dumps(refs, protocol=2))
    return ann_path, refs_path


def summary(refs):
    """Per split: refs, sentences, images (printed as a table)."""
    counts = defaultdict(lambda: [0, 0, set()])
    for ref in refs:
        entry = counts[ref['split']]
        entry[0] += 1
        entry[1] += len(ref['sentences'])
        entry[2].add(ref['image_id'])
    order = sorted(counts, key=lambda s: (REFER_SPLITS + (s, )).index(s))
    lines = [f'{"split":<8} {"refs":>8} {"sentences":>10} {"images":>8}']
    for split in order:
        n_refs, n_sents, imgs = counts[split]
        lines.append(f'{split:<8} {n_refs:>8} {n_sents:>10} {len(imgs):>8}')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', nargs='+',
                        help='parquet files or folders holding them (all '
                        'splits of one dataset)')
    parser.add_argument('--out', required=True,
                        help='output folder, e.g. data/refcoco')
    parser.add_argument('--split-by', required=True,
                        help='refs file name: refs(<split-by>).p (unc for '
                        'RefCOCO/RefCOCO+, umd or google for RefCOCOg)')
    parser.add_argument('--coco-instances',
                        help="COCO's instances_train2014.json: polygons for "
                        'refs whose raw_anns lack one, plus the COCO '
                        'records of instances.json')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    files = parquet_files(args.inputs)
    coco = load_coco(args.coco_instances)
    refs, instances = convert(files, coco, args.coco_instances)
    ann_path, refs_path = write_refer(args.out, refs, instances,
                                      args.split_by)
    print(f'read {len(files)} parquet files; wrote {refs_path} and '
          f'{ann_path} ({len(instances["images"])} images, '
          f'{len(instances["annotations"])} annotations)')
    print(summary(refs))


if __name__ == '__main__':
    main()
