"""Reliability and safety: no code runs from data files, per-sample draws
make resumed training identical, checkpoints survive a kill mid-save, and
bad inputs give clear errors."""
import glob
import itertools
import json
import os
import os.path as osp
import pickle
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from conftest import REPO, run_env
from mmwris.datasets.draws import SampleKey
from mmwris.registry import DATA_SAMPLERS, DATASETS
from mmwris.utils import UnsafePickleError

TINY = 'configs/tris/tris_clip-tiny_1xb32-3k_toyrefer-128x128.py'


class RunsACommand:
    """A pickled record that would run a command when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def refer_dataset(root, **kwargs):
    cfg = dict(type='RefCOCODataset', data_root=str(root),
               refs_file='refs(umd).p', ann_file='instances.json',
               data_prefix=dict(img_path='images'), split='val',
               test_mode=True, pipeline=[])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def load_refs(root):
    with open(root / 'refs(umd).p', 'rb') as f:
        return pickle.load(f)


def save_refs(root, refs):
    with open(root / 'refs(umd).p', 'wb') as f:
        pickle.dump(refs, f)


# ------------------------------------------------------- code from data
def test_malicious_refs_pickle_runs_nothing(real_refer_root, tmp_path):
    marker = tmp_path / 'pwned'
    refs = load_refs(real_refer_root)
    refs[0]['sentences'][0]['sent'] = RunsACommand(marker)
    save_refs(real_refer_root, refs)
    with pytest.raises(UnsafePickleError,
                       match=r'refs\(umd\)\.p.*"(posix|os)\.system".*'
                       'nothing was run'):
        refer_dataset(real_refer_root)
    assert not marker.exists()


def test_plain_refs_pickles_of_every_protocol_load(real_refer_root):
    refs = load_refs(real_refer_root)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with open(real_refer_root / 'refs(umd).p', 'wb') as f:
            pickle.dump(refs, f, protocol=protocol)
        assert len(refer_dataset(real_refer_root)) == 10


# ------------------------------------------------------ per-sample draws
TRAIN_PIPELINE = [
    dict(type='SampleNegativeTexts', num_negatives=3),
    dict(type='SampleIaDPartner'),
    dict(type='RandomFlipWithText', prob=0.5),
    dict(type='PackRISInputs', meta_keys=(
        'text', 'sent_id', 'ref_id', 'neg_texts', 'partner_text', 'flip')),
]


def toy_train_set(root):
    return DATASETS.build(dict(
        type='RefCOCODataset', data_root=str(root),
        refs_file='toyref/refs(synth).p', ann_file='toyref/instances.json',
        data_prefix=dict(img_path='images'), split='train',
        pipeline=[dict(type='LoadImageFromFile')] + TRAIN_PIPELINE))


def draws(sample):
    meta = sample['data_samples'].metainfo
    return (meta['ref_id'], meta['text'], tuple(meta['neg_texts']),
            meta['partner_text'], meta['flip'])


def test_sample_key_is_an_index_that_pickles():
    key = SampleKey(7, (0, 2, 7))
    assert key == 7 and list(range(10))[key] == 7
    copy = pickle.loads(pickle.dumps(key))
    assert copy == 7 and copy.key == (0, 2, 7)


def test_draws_depend_only_on_the_key(toy_refer_root):
    dataset = toy_train_set(toy_refer_root)
    first = draws(dataset[SampleKey(3, ('seed', 0, 3))])
    assert draws(dataset[SampleKey(3, ('seed', 0, 3))]) == first
    others = {draws(dataset[SampleKey(3, ('seed', epoch, 3))])
              for epoch in range(20)}
    assert len(others) > 5, 'another key draws differently'


@pytest.mark.parametrize('sampler_type', ['KeyedDefaultSampler',
                                          'KeyedInfiniteSampler'])
def test_workers_do_not_change_the_draws(toy_refer_root, sampler_type):
    dataset = toy_train_set(toy_refer_root)

    def run(workers):
        sampler = DATA_SAMPLERS.build(dict(type=sampler_type,
                                           dataset=dataset, seed=5))
        loader = DataLoader(dataset, batch_size=4, sampler=sampler,
                            num_workers=workers, collate_fn=pseudo_collate)
        batches = itertools.islice(loader, 15)
        return [draws(dict(data_samples=s)) for batch in batches
                for s in batch['data_samples']]

    assert run(0) == run(2)


def test_infinite_sampler_skip_keeps_the_keys(toy_refer_root):
    dataset = toy_train_set(toy_refer_root)
    sampler = DATA_SAMPLERS.build(dict(type='KeyedInfiniteSampler',
                                       dataset=dataset, seed=1))
    stream = [(int(i), i.key) for i in itertools.islice(sampler, 100)]
    sampler.skip(60)
    assert [(int(i), i.key) for i in itertools.islice(sampler, 40)] == \
        stream[60:]


# ------------------------------------------------------- exact resume
def train_cmd(root, work_dir, iters, extra=()):
    return [
        sys.executable, 'tools/train.py', TINY, '--work-dir', str(work_dir),
        '--cfg-options', f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.batch_size=4', 'val_dataloader.batch_size=8',
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        'default_hooks.logger.interval=1', 'log_processor.window_size=1',
        'default_hooks.checkpoint.interval=4',
        'default_hooks.checkpoint.save_best=None', *extra
    ]


def logged(work_dir):
    """``{iteration: loss}`` and the last val metrics of every run in
    ``work_dir`` (a resumed run logs into a new timestamp folder)."""
    losses, metrics = {}, {}
    for path in sorted(glob.glob(str(work_dir / '*' / 'vis_data' /
                                     'scalars.json'))):
        for line in open(path):
            record = json.loads(line)
            if 'loss' in record:
                losses[record['iter']] = record['loss']
            if 'val/PointM' in record:
                metrics = {k: v for k, v in record.items()
                           if k.startswith('val/')}
    return losses, metrics


def run_ok(cmd, timeout=600, workers=1):
    proc = subprocess.run(cmd, cwd=REPO, env=run_env(workers),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _names(path, ending):
    """``path`` exists and (if ``ending``) its text ends with ``ending``."""
    if not osp.exists(path):
        return False
    if ending is None:
        return True
    with open(path) as f:
        return f.read().endswith(ending)


def kill_after(cmd, path, timeout=300, ending=None):
    """Start ``cmd``, SIGKILL it as soon as ``path`` exists (and, with
    ``ending``, its text ends with it, e.g. ``last_checkpoint`` naming a
    checkpoint: written after the checkpoint file itself)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=run_env(1),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.time()
    while not _names(path, ending):
        assert proc.poll() is None, 'the run ended before the checkpoint'
        assert time.time() - start < timeout
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_and_resumed_training_is_identical(toy_refer_root, tmp_path):
    """12 iterations uninterrupted == 4 + SIGKILL + --resume to 12 (the
    resumed run even loads with 2 workers)."""
    whole, resumed = tmp_path / 'whole', tmp_path / 'resumed'
    run_ok(train_cmd(toy_refer_root, whole, 12))
    kill_after(train_cmd(toy_refer_root, resumed, 12),
               resumed / 'last_checkpoint', ending='iter_4.pth')
    assert open(resumed / 'last_checkpoint').read().endswith('iter_4.pth')
    run_ok(train_cmd(toy_refer_root, resumed, 12,
                     ['train_dataloader.num_workers=2']) + ['--resume'])
    losses, metrics = logged(whole)
    resumed_losses, resumed_metrics = logged(resumed)
    assert sorted(losses) == list(range(1, 13))
    assert set(range(5, 13)) <= set(resumed_losses)
    for iteration in range(5, 13):
        assert resumed_losses[iteration] == losses[iteration], iteration
    assert metrics and resumed_metrics == metrics


KILL_ON_RENAME = '''
import os, runpy, signal, sys
replace = os.replace
def dying_replace(src, dst):
    if str(dst).endswith('iter_8.pth'):
        os.kill(os.getpid(), signal.SIGKILL)
    return replace(src, dst)
os.replace = dying_replace
sys.argv = sys.argv[2:]  # [python, tools/train.py, ...] -> [train.py, ...]
runpy.run_path('tools/train.py', run_name='__main__')
'''


def test_kill_while_saving_a_checkpoint_loses_nothing(toy_refer_root,
                                                      tmp_path):
    """The process dies with the new checkpoint written but not renamed:
    the previous checkpoint is still there, ``last_checkpoint`` names it,
    and ``--resume`` finishes the run."""
    work = tmp_path / 'work'
    cmd = train_cmd(toy_refer_root, work, 12,
                    ['default_hooks.checkpoint.max_keep_ckpts=1'])
    proc = subprocess.run([sys.executable, '-c', KILL_ON_RENAME] + cmd,
                          cwd=REPO, env=run_env(1), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (work / 'iter_8.pth').exists()
    last = open(work / 'last_checkpoint').read()
    assert last.endswith('iter_4.pth') and osp.isfile(last)
    assert torch.load(last, map_location='cpu',
                      weights_only=False)['meta']['iter'] == 4
    run_ok(cmd + ['--resume'])
    assert open(work / 'last_checkpoint').read().endswith('iter_12.pth')
    assert not (work / 'iter_4.pth').exists(), 'max_keep_ckpts=1 still holds'


# ----------------------------------------------------------- bad inputs
def test_grey_and_rgba_images_load_as_rgb(real_refer_root):
    dataset = refer_dataset(real_refer_root, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadRISAnnotations'),
        dict(type='PackRISInputs')])
    first, second = (dataset.get_data_info(i)['img_path'] for i in (0, 2))
    height, width = cv2.imread(first).shape[:2]
    cv2.imwrite(first, np.full((height, width), 90, np.uint8))
    height, width = cv2.imread(second).shape[:2]
    rgba = np.full((height, width, 4), 200, np.uint8)
    with open(second, 'wb') as f:   # a PNG behind a .jpg name
        f.write(cv2.imencode('.png', rgba)[1].tobytes())
    for i in (0, 2):
        inputs = dataset[i]['inputs']
        assert inputs.shape[0] == 3


def test_empty_or_outside_boxes_are_errors(real_refer_root):
    coco = json.loads((real_refer_root / 'instances.json').read_text())
    ref = next(r for r in load_refs(real_refer_root) if r['split'] == 'val')
    ann = next(a for a in coco['annotations'] if a['id'] == ref['ann_id'])
    image = next(i for i in coco['images'] if i['id'] == ref['image_id'])
    for bbox in ([10, 10, 0, 5], [image['width'] + 1, 5, 10, 10]):
        ann['bbox'] = bbox
        (real_refer_root / 'instances.json').write_text(json.dumps(coco))
        with pytest.raises(ValueError, match=f'ref_id={ref["ref_id"]}.*'
                           'empty or outside'):
            refer_dataset(real_refer_root)


def test_zero_area_polygon_is_an_error(real_refer_root):
    coco = json.loads((real_refer_root / 'instances.json').read_text())
    ref = next(r for r in load_refs(real_refer_root) if r['split'] == 'val')
    ann = next(a for a in coco['annotations'] if a['id'] == ref['ann_id'])
    ann['segmentation'] = [[5.0, 5.0, 5.0, 5.0, 5.0, 5.0]]
    (real_refer_root / 'instances.json').write_text(json.dumps(coco))
    dataset = refer_dataset(real_refer_root, pipeline=[
        dict(type='LoadRISAnnotations')])
    index = next(i for i in range(len(dataset))
                 if dataset.get_data_info(i)['ref_id'] == ref['ref_id'])
    with pytest.raises(ValueError, match=f'ann_id={ref["ann_id"]} is empty'):
        dataset[index]


def test_duplicate_sent_ids_across_refs_are_an_error(real_refer_root):
    refs = load_refs(real_refer_root)
    val = [r for r in refs if r['split'] == 'val']
    val[1]['sentences'][0]['sent_id'] = val[0]['sentences'][0]['sent_id']
    save_refs(real_refer_root, refs)
    with pytest.raises(ValueError, match=r'sent_id=\d+ belongs to two refs, '
                       f'ref_id={val[0]["ref_id"]} and '
                       f'ref_id={val[1]["ref_id"]}'):
        refer_dataset(real_refer_root)


def test_bytes_expressions_must_be_utf8(real_refer_root):
    refs = load_refs(real_refer_root)
    val = [r for r in refs if r['split'] == 'val']
    val[0]['sentences'][0]['sent'] = 'the café'.encode('utf-8')
    save_refs(real_refer_root, refs)
    dataset = refer_dataset(real_refer_root)
    assert dataset.get_data_info(0)['text'] == 'the café'
    val[0]['sentences'][0]['sent'] = 'the caf\xe9'.encode('latin-1')
    save_refs(real_refer_root, refs)
    with pytest.raises(ValueError, match='not UTF-8'):
        refer_dataset(real_refer_root)


def test_very_long_expression_keeps_its_end_token():
    from mmwris.models.foundation import bpe_tokenizer, clip_token_ids
    ids, mask = clip_token_ids(['the red ' * 500, 'a dog'], 20)
    tokenizer = bpe_tokenizer()
    assert ids[0, -1] == tokenizer.eot_token_id and mask[0].all()
    assert ids[1, int(mask[1].sum()) - 1] == tokenizer.eot_token_id
