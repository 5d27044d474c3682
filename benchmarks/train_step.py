"""Median time per training step and peak memory of a TRIS model.

Builds the model of a config with random weights (no checkpoint needed),
feeds random images and real-looking expressions, and times the full step
(forward, losses, backward, optimizer) with and without AMP (bf16
autocast). Prints a table; not a test.

    python benchmarks/train_step.py \
        configs/tris/tris_clip-r50_1xb48-15e_refcoco-unc-320x320.py \
        --batch 8 --steps 5
"""
import argparse
import contextlib
import resource
import statistics
import time

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmseg.structures import SegDataSample

from mmwris.registry import MODELS
from mmwris.utils import register_all_modules

WORDS = ('man woman dog red blue left right shirt small big the on in with '
         'holding near behind car chair table').split()


def fake_batch(batch: int, size, num_negatives: int, device: str):
    """Random images ``[B, 3, H, W]`` and data samples with texts."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, *size, generator=gen).to(device)
    samples = []
    for i in range(batch):
        def sentence(k):
            idx = torch.randint(len(WORDS), (6 + (k % 5), ), generator=gen)
            return ' '.join(WORDS[j] for j in idx)
        sample = SegDataSample()
        sample.set_metainfo(dict(
            text=sentence(i), neg_texts=[sentence(i + j + 1)
                                         for j in range(num_negatives)],
            img_shape=tuple(size), ori_shape=tuple(size),
            pad_shape=tuple(size), batch_input_shape=tuple(size)))
        samples.append(sample)
    return images, samples


def peak_memory_mb(device: str) -> float:
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(model, optim_wrapper, images, samples, steps, warmup,
               amp: bool, device: str):
    device_type = 'cuda' if device.startswith('cuda') else 'cpu'
    autocast = torch.autocast(device_type, dtype=torch.bfloat16) if amp \
        else contextlib.nullcontext()
    times = []
    if device_type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    for step in range(warmup + steps):
        if device_type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            losses = model.loss(images, samples)
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)
        if device_type == 'cuda':
            torch.cuda.synchronize()
        if step >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), peak_memory_mb(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default=None)
    parser.add_argument('--no-amp', action='store_true',
                        help='skip the AMP measurement')
    args = parser.parse_args()

    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='WARNING')
    cfg = Config.fromfile(args.config)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    size = tuple(cfg.model.data_preprocessor.get('size', (320, 320)))
    num_negatives = max([
        t.get('num_negatives', 0)
        for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] == 'SampleNegativeTexts'
    ] or [0])
    model = MODELS.build(cfg.model).to(device).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    images, samples = fake_batch(args.batch, size, num_negatives, device)
    params = sum(p.numel() for p in model.parameters()) / 1e6

    rows = []
    for amp in ([False] if args.no_amp else [False, True]):
        ms, mem = time_steps(model, optim_wrapper, images, samples,
                             args.steps, args.warmup, amp, device)
        rows.append((amp, ms, mem))
    print(f'config: {args.config}')
    print(f'device: {device}, batch {args.batch}, input {size[0]}x{size[1]},'
          f' {params:.1f} M parameters, median of {args.steps} steps '
          f'after {args.warmup} warm-up')
    print(f'{"amp":<6}{"ms/step":>10}{"img/s":>10}{"peak MB":>10}')
    for amp, ms, mem in rows:
        print(f'{"bf16" if amp else "fp32":<6}{ms:>10.1f}'
              f'{1000 * args.batch / ms:>10.1f}{mem:>10.0f}')
    if len(rows) == 2:
        print(f'AMP speed-up: {rows[0][1] / rows[1][1]:.2f}x')
    if device == 'cpu':
        print('(CPU peak memory is the process peak RSS, fp32 and AMP '
              'runs together)')


if __name__ == '__main__':
    main()
