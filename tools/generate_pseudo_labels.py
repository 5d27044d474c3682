"""Pseudo labels for TRIS step 2 from a trained step-1 model.

    python tools/generate_pseudo_labels.py CONFIG CHECKPOINT --out DIR \
        [--split train] [--refiner threshold|crf|random-walk|irn] [--no-prms]

Writes DIR/masks/{ref_id}.png (0 background, 1 foreground, 255 ignore, at
the original image size), DIR/index.json and DIR/summary.json. Restarting
skips refs that are done. IRN (the released TRIS refiner) first writes
DIR/cams and DIR/seeds for every ref, trains its network on all the seeds
(DIR/irn, resumable) and then writes the masks. Multi-GPU (or multi-process CPU) through the same
launchers as tools/test.py, e.g. with torchrun and ``--launcher pytorch``.
Settings come from the config's ``pseudo_label_cfg`` (split, batch_size,
prms, scorer, refiner); the flags override them.
"""
import argparse
import os
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.dist import init_dist
from mmengine.runner import load_checkpoint

from mmwris.models.segmentors import BaseRISSegmentor
from mmwris.pseudo_labels import PseudoLabelGenerator
from mmwris.registry import DATASETS, MODELS, TASK_UTILS
from mmwris.utils import register_all_modules, setup_cpu_distributed

REFINERS = {
    'threshold': 'ThresholdRefiner',
    'crf': 'DenseCRFRefiner',
    'random-walk': 'AffinityRandomWalkRefiner',
    'irn': 'IRNRefiner',
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='step-1 config file')
    parser.add_argument('checkpoint', help='step-1 checkpoint')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--split', help='dataset split (default: train)')
    parser.add_argument('--refiner', choices=sorted(REFINERS),
                        help='refinement (default: the config\'s)')
    parser.add_argument('--no-prms', action='store_true',
                        help='skip PRMS: use the first expression\'s map')
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--max-refs', type=int,
                        help='only the first N refs (quick experiments)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_model(cfg: Config, checkpoint: str, device: str):
    """The step-1 model with strictly loaded weights."""
    model = MODELS.build(cfg.model)
    if not isinstance(model, BaseRISSegmentor):
        raise SystemExit(f'{cfg.filename} builds {type(model).__name__}, '
                         'not a referring segmentor.')
    try:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                        logger='silent')
    except RuntimeError as e:
        raise SystemExit(
            f'Checkpoint {checkpoint} is not a checkpoint of the '
            f'{type(model).__name__} in {cfg.filename}: {e}')
    return model.to(device).eval()


def main():
    args = parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    options = dict(split='train', batch_size=8, prms=True, scorer=None,
                   refiner=dict(type='ThresholdRefiner'))
    options.update(cfg.get('pseudo_label_cfg') or {})
    if args.split:
        options['split'] = args.split
    if args.batch_size:
        options['batch_size'] = args.batch_size
    if args.refiner and REFINERS[args.refiner] != options['refiner']['type']:
        # The config's own refiner keeps its settings; another one gets its
        # defaults.
        options['refiner'] = dict(type=REFINERS[args.refiner])
    if args.no_prms:
        options['prms'] = False

    if args.launcher != 'none':
        if torch.cuda.is_available():
            init_dist(args.launcher)
        else:
            setup_cpu_distributed(cfg, args.launcher)
    device = (f'cuda:{int(os.environ["LOCAL_RANK"])}'
              if torch.cuda.is_available() else 'cpu')

    model = build_model(cfg, args.checkpoint, device)
    dataset_cfg = dict(cfg.train_dataloader.dataset)
    dataset_cfg.pop('pseudo_label_dir', None)
    dataset_cfg.pop('skip_missing_pseudo_labels', None)
    dataset_cfg.update(split=options['split'], test_mode=True,
                       pipeline=cfg.test_dataloader.dataset.pipeline)
    dataset = DATASETS.build(dataset_cfg)
    scorer = None
    if options['prms']:
        if not options.get('scorer'):
            raise SystemExit(
                'PRMS needs a frozen CLIP scorer: set pseudo_label_cfg.'
                'scorer (arch, pretrained) or pass --no-prms.')
        scorer = MODELS.build(dict(type='FrozenCLIPScorer',
                                   **options['scorer'])).to(device)
    refiner = TASK_UTILS.build(options['refiner'])

    summary = PseudoLabelGenerator(
        model, dataset, refiner, args.out, scorer=scorer,
        batch_size=options['batch_size'], max_refs=args.max_refs).run()
    if summary['failed']:
        sys.exit(f'{summary["failed"]} refs failed; see {args.out}/'
                 'summary.json. Fix them and run again: finished refs are '
                 'skipped.')


if __name__ == '__main__':
    main()
