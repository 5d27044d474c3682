"""Evaluate a referring segmentor (mmseg's tools/test.py semantics)."""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmwris.utils import (register_all_modules, setup_cpu_distributed,
                          shutdown_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a mmwris model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint', nargs='?', default=None,
        help='checkpoint file (omit for models without weights, such as '
        'the centre-prior baseline)')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        help='directory to save per-sample results (results.jsonl: IoU and '
        'hits of every expression)')
    parser.add_argument(
        '--show-dir',
        help='directory to save overlay pictures (response map, predicted '
        'and GT masks, expression); default_hooks.visualization.interval '
        'thins them out')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='model and inputs in the channels-last memory format')
    parser.add_argument(
        '--tf32',
        action='store_true',
        help='allow TF32 matmuls and convolutions (Ampere and newer GPUs)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.channels_last:
        train_cfg = dict(cfg.model.get('train_cfg') or {})
        train_cfg['channels_last'] = True
        cfg.model.train_cfg = train_cfg
    if args.tf32 or cfg.get('tf32', False):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    if args.show_dir:
        visualization = dict(cfg.default_hooks.get('visualization') or {})
        if visualization.get('type') != 'RISVisualizationHook':
            visualization = dict(type='RISVisualizationHook')
        visualization.update(draw=True, out_dir=args.show_dir)
        cfg.default_hooks.visualization = visualization
    if args.out:
        evaluators = cfg.test_evaluator
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for evaluator in evaluators:
            if evaluator.get('type') == 'RISMetric':
                evaluator['output_file'] = osp.join(args.out,
                                                    'results.jsonl')

    if args.launcher != 'none':
        # Evaluation needs no DDP (and DDP refuses parameter-free models).
        # mmengine looks wrapper types up in its root registry only, hence
        # the full import path.
        cfg.model_wrapper_cfg = dict(
            type='mmwris.engine.model_wrappers.RISTestWrapper')
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    main()
