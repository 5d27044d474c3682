"""PCNet against TRIS step 1 on the toy data under the same budget.

Trains (or reuses) the tiny TRIS and PCNet toy configs with the same data,
batch, optimiser and number of iterations, evaluates both on val with
``tools/test.py`` and prints one table (PointM, mIoU, and PCNet's
"segmentor" mIoU: the proposal containing the response peak). Makes the
toy data, the rule-based phrases and the colour-region proposals if they
are missing. Not a test; numbers for the README.

    python benchmarks/pcnet_vs_tris_toy.py --iters 3000 \
        --work-dir work_dirs/toy_compare
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    TRIS='configs/tris/tris_clip-tiny_1xb32-3k_toyrefer-128x128.py',
    PCNet='configs/pcnet/pcnet_clip-tiny_1xb32-3k_toyrefer-128x128.py')
DATA = 'data/toy_refer'


def call(*args) -> None:
    print('$', ' '.join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=REPO, check=True)


def prepare_data() -> None:
    if not osp.isfile(osp.join(REPO, DATA, 'toyref', 'refs(synth).p')):
        call('tools/dataset_converters/make_toy_refer.py', '--out', DATA)
    call('tools/decompose_phrases.py', CONFIGS['PCNet'], '--out',
         f'{DATA}/phrases.json', '--backend', 'rule', '--no-progress')
    call('tools/generate_proposals.py', CONFIGS['PCNet'], '--out',
         f'{DATA}/proposals', '--backend', 'regions', '--no-clip')


def train_and_test(name: str, iters: int, work_dir: str) -> dict:
    config = CONFIGS[name]
    work = osp.join(work_dir, name.lower())
    checkpoint = osp.join(work, f'iter_{iters}.pth')
    if not osp.isfile(checkpoint):
        call('tools/train.py', config, '--work-dir', work, '--cfg-options',
             f'train_cfg.max_iters={iters}',
             f'train_cfg.val_interval={iters}',
             f'param_scheduler.1.end={iters}')
    evaluation = osp.join(work, 'eval')
    call('tools/test.py', config, checkpoint, '--work-dir', evaluation,
         '--cfg-options', 'test_dataloader.dataset.split=val')
    newest = sorted(glob.glob(osp.join(evaluation, '*', '*.json')))[-1]
    with open(newest) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--iters', type=int, default=3000)
    parser.add_argument('--work-dir', default='work_dirs/toy_compare')
    parser.add_argument('--methods', nargs='+', default=list(CONFIGS),
                        choices=list(CONFIGS))
    args = parser.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    prepare_data()
    results = {name: train_and_test(name, args.iters, args.work_dir)
               for name in args.methods}
    print(f'\nval of the toy data, {args.iters} iterations, batch 32:')
    print('| method | PointM | PointIt | mIoU | oIoU | segmentor mIoU |')
    print('|---|---|---|---|---|---|')
    for name, metrics in results.items():
        segmentor = metrics.get('val/segmentor/mIoU', '-')
        print(f'| {name} | {metrics["val/PointM"]} | '
              f'{metrics["val/PointIt"]} | {metrics["val/mIoU"]} | '
              f'{metrics["val/oIoU"]} | {segmentor} |')


if __name__ == '__main__':
    main()
