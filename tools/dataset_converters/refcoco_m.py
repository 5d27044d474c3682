"""Convert RefCOCO-M (Hugging Face ``moondream/refcoco-m``: parquet, one row
per image with the image bytes and its referred instances) to the
refer-toolkit layout read by ``RefCOCODataset``: ``images/``,
``instances.json`` (the RLE masks kept as they are) and ``refs(unc).p``
(split ``val``: RefCOCO-M is the re-annotated RefCOCO UNC val split).

Example (README, "Data preparation")::

    python tools/dataset_converters/refcoco_m.py data/hf/refcoco-m/data \
        --out data/refcoco-m

RefCOCO-M has no ref or sentence ids: each instance becomes a ref whose
``ref_id`` and ``ann_id`` are the instance ``id``; ``sent_id`` numbers its
sentences in file order from 0. ``category_id`` numbers the category names
in sorted order (``instances.json`` lists them). Needs ``pyarrow`` and
``pycocotools`` (imported here only).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from refer_from_parquet import (first_ids, hf_split_of,  # noqa: E402
                                parquet_files, progress, read_parquet,
                                summary, write_refer)

COLUMNS = ('image', 'image_id', 'file_name', 'samples')
SAMPLE_KEYS = ('id', 'category', 'sentences', 'bbox', 'mask')


def image_bytes(row, path, index):
    image = row['image']
    data = image.get('bytes') if isinstance(image, dict) else image
    if not data:
        raise ValueError(f'{path}, row {index} (image_id={row["image_id"]}): '
                         'no image bytes.')
    return data


def convert_sample(sample, row, path, index, sent_id):
    """(ref, annotation) of one RefCOCO-M instance."""
    from pycocotools import mask as mask_utils
    where = (f'{path}, row {index} (image_id={row["image_id"]}, '
             f'instance id={sample.get("id")})')
    missing = [k for k in SAMPLE_KEYS if sample.get(k) is None]
    if missing:
        raise ValueError(f'{where} lacks {missing}.')
    mask = sample['mask']
    if not mask.get('counts') or len(mask.get('size') or ()) != 2:
        raise ValueError(f'{where}: mask is not a COCO RLE '
                         '{counts: str, size: [H, W]}.')
    rle = dict(counts=str(mask['counts']), size=[int(v) for v in
                                                  mask['size']])
    try:
        area = float(mask_utils.area(dict(rle, counts=rle['counts'].encode())))
    except Exception as e:  # pycocotools raises plain errors on bad RLE
        raise ValueError(f'{where}: unreadable RLE mask ({e}).') from e
    sentences = [dict(tokens=str(s).split(), raw=str(s), sent_id=sent_id + k,
                      sent=str(s)) for k, s in enumerate(sample['sentences'])]
    ref = dict(image_id=row['image_id'], split='val', sentences=sentences,
               file_name=row['file_name'], category_id=sample['category'],
               ann_id=sample['id'], sent_ids=[s['sent_id'] for s in sentences],
               ref_id=sample['id'])
    ann = dict(segmentation=rle, area=area, iscrowd=0,
               image_id=row['image_id'],
               bbox=[float(v) for v in sample['bbox']],
               category_id=sample['category'], id=sample['id'])
    return ref, ann


def convert(files, image_dir=None):
    """refs, instances (and the images written to ``image_dir``)."""
    refs, anns, images, categories, empty = [], [], [], {}, []
    seen_images, seen_ids = {}, {}
    for path in files:
        if hf_split_of(path) not in (None, 'validation'):
            raise ValueError(f'{path}: unknown split name '
                             f'"{hf_split_of(path)}" for RefCOCO-M (it has '
                             'only "validation", refer split val).')
        rows = read_parquet(path, COLUMNS)
        for index, row in progress(enumerate(rows), len(rows),
                                   f'converting {path}'):
            image_id = row['image_id']
            if image_id in seen_images:
                raise ValueError(f'{path}, row {index}: duplicated image_id '
                                 f'{image_id} (first in '
                                 f'{seen_images[image_id]}).')
            seen_images[image_id] = f'{path}, row {index}'
            samples = row['samples'] or []
            if not samples:
                raise ValueError(f'{path}, row {index} (image_id='
                                 f'{image_id}) has no samples.')
            for sample in samples:
                if sample.get('id') in seen_ids:
                    raise ValueError(
                        f'{path}, row {index}: duplicated instance id '
                        f'{sample["id"]} (first in {seen_ids[sample["id"]]}).')
                seen_ids[sample.get('id')] = f'{path}, row {index}'
                if not sample.get('sentences'):
                    empty.append(sample.get('id'))
                    continue
                categories.setdefault(sample.get('category'),
                                      sample.get('supercategory'))
                sent_id = sum(len(r['sentences']) for r in refs)
                ref, ann = convert_sample(sample, row, path, index, sent_id)
                refs.append(ref)
                anns.append(ann)
            height, width = samples[0]['mask']['size']
            images.append(dict(id=image_id, file_name=row['file_name'],
                               height=int(height), width=int(width)))
            if image_dir is not None:
                write_image(osp.join(image_dir, row['file_name']),
                            image_bytes(row, path, index))
    category_ids = {name: i + 1 for i, name in enumerate(sorted(categories))}
    for record in refs + anns:
        record['category_id'] = category_ids[record['category_id']]
    instances = dict(
        images=images, annotations=anns,
        categories=[dict(id=i, name=name, supercategory=categories[name])
                    for name, i in category_ids.items()])
    return refs, instances, empty


def write_image(path, data):
    """Write the image bytes unless an identical file is there."""
    if osp.isfile(path) and osp.getsize(path) == len(data):
        with open(path, 'rb') as f:
            if f.read() == data:
                return
    from mmwris.utils.io import atomic_write_bytes
    os.makedirs(osp.dirname(path), exist_ok=True)
    atomic_write_bytes(path, data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', nargs='+',
                        help='parquet files or folders holding them')
    parser.add_argument('--out', required=True,
                        help='output folder, e.g. data/refcoco-m')
    parser.add_argument('--no-images', action='store_true',
                        help='do not write images/ (point the config at '
                        'your COCO train2014 folder instead)')
    args = parser.parse_args(argv)
    files = parquet_files(args.inputs)
    image_dir = None if args.no_images else osp.join(args.out, 'images')
    refs, instances, empty = convert(files, image_dir)
    if empty:
        print(f'warning: skipped {len(empty)} instances without sentences: '
              f'ids {first_ids(empty)}', file=sys.stderr)
    ann_path, refs_path = write_refer(args.out, refs, instances, 'unc')
    where = '' if image_dir is None else f', images in {image_dir}'
    print(f'read {len(files)} parquet files; wrote {refs_path} and '
          f'{ann_path}{where}')
    print(summary(refs))


if __name__ == '__main__':
    main()
