"""Train a referring segmentor (mmseg's tools/train.py semantics)."""
import argparse
import logging
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmwris.utils import (register_all_modules, setup_cpu_distributed,
                          shutdown_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a mmwris model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='mixed precision: mmengine\'s AmpOptimWrapper with bf16 '
        'autocast (see --amp-dtype)')
    parser.add_argument(
        '--amp-dtype',
        choices=['bfloat16', 'float16'],
        default='bfloat16',
        help='autocast dtype of --amp (float16 adds dynamic loss scaling)')
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='model and inputs in the channels-last memory format '
        '(model.train_cfg.channels_last)')
    parser.add_argument(
        '--tf32',
        action='store_true',
        help='allow TF32 matmuls and convolutions (Ampere and newer GPUs)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the model (mmengine\'s compile option)')
    parser.add_argument(
        '--tokenize-in-workers',
        action='store_true',
        help='pack the CLIP token ids of the expressions in the data '
        'workers (PackRISInputs(tokenize=...), matched to '
        'model.text_encoder), not in the forward')
    parser.add_argument(
        '--fast',
        action='store_true',
        help='the GPU switch: --amp (bf16) --channels-last --tf32 '
        '--tokenize-in-workers')
    parser.add_argument(
        '--no-keep-freed-memory',
        action='store_true',
        help='CPU training: leave glibc malloc at its defaults (by default '
        'freed memory stays in the process, see keep_freed_memory)')
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def apply_performance_options(cfg: Config,
                              amp: bool = False,
                              amp_dtype: str = 'bfloat16',
                              channels_last: bool = False,
                              tf32: bool = False,
                              compile: bool = False,
                              tokenize_in_workers: bool = False) -> Config:
    """Set the GPU speed options in ``cfg`` (README "Performance").

    ``amp``: the ``OptimWrapper`` becomes mmengine's ``AmpOptimWrapper``
    with ``dtype=amp_dtype`` (``float16`` also gets dynamic loss scaling);
    ``channels_last``: ``model.train_cfg.channels_last``; ``tf32``: TF32
    matmuls and cuDNN convolutions (``cfg.tf32``, applied by :func:`main`);
    ``compile``: mmengine's ``compile`` option; ``tokenize_in_workers``:
    :func:`pack_clip_token_ids`.
    """
    if amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        elif optim_wrapper != 'OptimWrapper':
            raise ValueError('--amp needs optim_wrapper.type '
                             f'"OptimWrapper", got "{optim_wrapper}".')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.dtype = amp_dtype
            if amp_dtype == 'float16':
                cfg.optim_wrapper.loss_scale = 'dynamic'
    if channels_last:
        train_cfg = dict(cfg.model.get('train_cfg') or {})
        train_cfg['channels_last'] = True
        cfg.model.train_cfg = train_cfg
    if tf32:
        cfg.tf32 = True
    if compile:
        cfg.compile = True
    if tokenize_in_workers:
        pack_clip_token_ids(cfg)
    return cfg


def pack_clip_token_ids(cfg: Config) -> int:
    """Make every ``PackRISInputs`` of the train / val / test loaders pack
    the expressions' CLIP token ids, with the ``context_length`` and
    ``keep_eot`` of ``model.text_encoder``, so the BPE string work runs in
    the data workers (the model reads them, :meth:`tokens_of`). Nothing
    changes for a model without a ``CLIPTextEncoder``. Returns the number
    of pipelines changed."""
    encoder = cfg.model.get('text_encoder') or {}
    if encoder.get('type') != 'CLIPTextEncoder':
        return 0
    tokenize = dict(context_length=encoder.get('context_length', 20),
                    keep_eot=encoder.get('keep_eot', True))
    changed = 0

    def visit(node) -> None:
        nonlocal changed
        if isinstance(node, dict):
            for step in node.get('pipeline') or []:
                if isinstance(step, dict) and \
                        step.get('type') == 'PackRISInputs':
                    step['tokenize'] = dict(tokenize)
                    changed += 1
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader):
            visit(cfg[loader])
    return changed


def keep_freed_memory() -> bool:
    """Keep freed heap memory in the process (glibc malloc only).

    With glibc's defaults the large tensors of a CPU training step are
    ``mmap``-ed and unmapped again every step, and the heap top is given
    back to the system, so every step page-faults its activations and
    gradients in afresh (README "Performance": the CPU gap to the released
    TRIS was these page faults). ``M_MMAP_MAX = 0``
    serves them from the heap (threads' arenas still fall back to ``mmap``
    for what does not fit) and a maximal ``M_TRIM_THRESHOLD`` keeps the
    heap. The process then holds its peak memory, which a training loop
    reaches every step anyway. Returns whether glibc took the settings.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def enable_tf32() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision('high')


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

    if args.fast:
        args.amp = args.channels_last = args.tf32 = True
        args.tokenize_in_workers = True
    if args.amp and not torch.cuda.is_available():
        raise SystemExit('--amp needs a GPU: mmengine\'s AmpOptimWrapper '
                         'supports CUDA/NPU/MLU/MUSA devices only.')
    apply_performance_options(cfg, args.amp, args.amp_dtype,
                              args.channels_last, args.tf32, args.compile,
                              args.tokenize_in_workers)
    if cfg.get('tf32', False):
        enable_tf32()
    if not torch.cuda.is_available() and not args.no_keep_freed_memory:
        keep_freed_memory()
    cfg.resume = args.resume

    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    main()
