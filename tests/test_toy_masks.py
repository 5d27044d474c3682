"""The class-agnostic toy mask corpus (make_toy_masks.py), its SA-1B-style
records and the SAM dataset pipeline."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from conftest import make_toy_refer
from toy_sam import load_tool, make_corpus, MAKER

SMALL = dict(num_train=5, num_val=2, seed=1)


def _files(root):
    out = {}
    for split in ('train', 'val'):
        for name in sorted(os.listdir(osp.join(root, split))):
            with open(osp.join(root, split, name), 'rb') as f:
                out[f'{split}/{name}'] = f.read()
    return out


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy_masks'))
    summary = make_corpus(root, **SMALL)
    return root, summary


def test_layout_and_records(corpus):
    from mmwris.datasets.toy_masks import interior_point, read_mask_record
    root, summary = corpus
    assert summary['train']['images'] == 5 and summary['val']['images'] == 2
    assert summary['train']['masks'] > 5 * 2
    names = sorted(os.listdir(osp.join(root, 'val')))
    assert names == ['mask_000006.json', 'mask_000006.png',
                     'mask_000007.json', 'mask_000007.png']
    path = osp.join(root, 'train', 'mask_000001.json')
    with open(path) as f:
        record = json.load(f)
    image = record['image']
    assert set(image) == {'image_id', 'file_name', 'height', 'width'}
    assert image['file_name'] == 'mask_000001.png' and image['image_id'] == 1
    png = cv2.imread(osp.join(root, 'train', image['file_name']))
    assert png.shape[:2] == (image['height'], image['width'])
    _, masks = read_mask_record(path)
    for ann, mask in zip(record['annotations'], masks):
        assert isinstance(ann['segmentation']['counts'], str)
        assert ann['area'] == int(mask.sum()) > 0
        x, y, w, h = ann['bbox']
        ys, xs = np.nonzero(mask)
        assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                ys.max() - ys.min() + 1)
        px, py = ann['point_coords'][0]
        assert mask[int(py), int(px)] == 1
        assert (px, py) == interior_point(mask)
    # Instances are the visible parts: no pixel belongs to two masks.
    assert masks.sum(0).max() == 1


def test_rle_round_trip():
    from mmwris.datasets.toy_masks import make_mask_record
    rng = np.random.default_rng(0)
    masks = (rng.random((3, 17, 23)) < 0.3).astype(np.uint8)
    record = make_mask_record(9, 'x.png', masks)
    for ann, mask in zip(record['annotations'], masks):
        rle = dict(ann['segmentation'])
        rle['counts'] = rle['counts'].encode('ascii')
        assert np.array_equal(mask_utils.decode(rle), mask)
        assert json.loads(json.dumps(ann)) == ann


def test_interior_point_is_the_distance_maximum():
    from mmwris.datasets.toy_masks import interior_point
    mask = np.zeros((20, 30), np.uint8)
    mask[2:9, 4:25] = 1  # rows 2-8: the centre row is 5
    x, y = interior_point(mask)
    assert y == 5 and 7 <= x <= 21 and mask[int(y), int(x)]
    with pytest.raises(ValueError):
        interior_point(np.zeros((4, 4)))


def test_deterministic_per_seed_and_resumable(tmp_path, corpus):
    root, _ = corpus
    again = str(tmp_path / 'again')
    make_corpus(again, **SMALL)
    assert _files(again) == _files(root)
    other = str(tmp_path / 'other')
    make_corpus(other, **dict(SMALL, seed=2))
    assert _files(other)['train/mask_000001.png'] != \
        _files(root)['train/mask_000001.png']
    # Resume: a lost record (and a stale temporary file) is redone alone.
    os.remove(osp.join(again, 'train', 'mask_000003.json'))
    summary = make_corpus(again, **SMALL)
    assert summary['train'] == dict(images=1, masks=summary['train'][
        'masks'], skipped=4)
    assert _files(again) == _files(root)
    with pytest.raises(ValueError, match='other settings'):
        make_corpus(again, **dict(SMALL, max_objects=4))


def test_disjoint_from_the_referring_data(tmp_path):
    """Same seed, same image index: another random stream, other images."""
    tool = load_tool(MAKER)
    refer = tmp_path / 'refer'
    make_toy_refer(refer, num_train=3, num_val=0, num_testA=0, num_testB=0,
                   seed=0)
    ref_imgs = [cv2.imread(str(refer / 'images' / f'toy_{i:06d}.png'))
                for i in (1, 2, 3)]
    masks_root = str(tmp_path / 'masks')
    make_corpus(masks_root, num_train=3, num_val=0, seed=0)
    for i in (1, 2, 3):
        img = cv2.imread(osp.join(masks_root, 'train', f'mask_{i:06d}.png'))
        assert all(img.shape != r.shape or not np.array_equal(img, r)
                   for r in ref_imgs)
    assert tool.NAMESPACE not in (0, 1, 2, 3)


def test_dataset_and_pipeline(corpus):
    from mmengine.config import Config
    from mmwris.registry import DATASETS
    from toy_sam import CONFIG
    root, _ = corpus
    cfg = Config.fromfile(CONFIG)
    cfg.val_dataloader.dataset.data_root = root
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(dataset) == 2
    out = dataset[0]
    img, sample = out['inputs'], out['data_samples']
    h, w = sample.metainfo['img_shape']
    assert img.shape == (3, h, w) and max(h, w) == 128
    n = len(sample.gt_masks)
    assert sample.gt_masks.shape == (n, h, w)
    assert sample.gt_masks_ori.shape[1:] == sample.metainfo['ori_shape']
    # The evaluation point lies inside its (resized) mask.
    for mask, (x, y) in zip(sample.gt_masks, sample.prompt_points):
        assert mask[int(y), int(x)]
    boxes = sample.prompt_boxes
    assert ((boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])).all()
