"""Evaluation throughput: inference time against metric time.

Builds the model of a config with random weights, feeds ``--num``
expressions (random images at the network size, original sizes drawn
around COCO's 640x480, GT masks and boxes at the original size, as the
test pipeline packs them) through ``model.test_step`` (preprocessor,
forward, mask decoding at the original resolution) and the config's
evaluator (``RISMetric.process`` + ``compute_metrics``), timing both.
Prints the time per expression, the time for 10k expressions (measured
when ``--num 10000``, else scaled from ``--num``) and the metric's share
of the inference time (the target is < 5%). Not a test.

    python benchmarks/eval_throughput.py --num 10000 --batch 64   # GPU
    OMP_NUM_THREADS=1 python benchmarks/eval_throughput.py --num 48 --batch 16
"""
import argparse
import copy
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.structures import PixelData

PAPER_CONFIG = 'configs/tris/tris_clip-r50_1xb48-15e_refcoco-unc-320x320.py'
WORDS = ('man woman dog red blue left right shirt small big the on in with '
         'holding near behind car chair table').split()


def make_batches(num, batch, size, seed=0):
    """Lists of ``(inputs, data_samples)`` like the test dataloader's."""
    from mmwris.structures import RISDataSample
    rng = np.random.default_rng(seed)
    batches = []
    for start in range(0, num, batch):
        inputs, samples = [], []
        for _ in range(min(batch, num - start)):
            ori = (int(rng.integers(360, 640)), int(rng.integers(400, 640)))
            inputs.append(torch.from_numpy(
                rng.integers(0, 256, (3, *size), dtype=np.uint8)))
            h, w = ori
            y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
            y1, x1 = y0 + h // 3, x0 + w // 3
            mask = np.zeros((1, h, w), np.uint8)
            mask[:, y0:y1, x0:x1] = 1
            sample = RISDataSample()
            sample.set_metainfo(dict(
                text=' '.join(rng.choice(WORDS, 7)), img_shape=size,
                ori_shape=ori, pad_shape=size, split='val',
                ref_id=start, sent_id=start,
                gt_bbox=np.array([x0, y0, x1, y1], np.float32)))
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(mask))
            samples.append(sample)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=PAPER_CONFIG)
    parser.add_argument('--num', type=int, default=10000)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--device', default=None)
    parser.add_argument('--bf16', action='store_true',
                        help='inference under bf16 autocast')
    parser.add_argument('--channels-last', action='store_true')
    args = parser.parse_args()

    from mmwris.registry import METRICS, MODELS
    from mmwris.utils import register_all_modules
    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='WARNING')
    cfg = Config.fromfile(args.config)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model_cfg = copy.deepcopy(cfg.model)
    if args.channels_last:
        model_cfg.train_cfg = dict(model_cfg.get('train_cfg') or {},
                                   channels_last=True)
    model = MODELS.build(model_cfg).to(device).eval()
    evaluator_cfg = cfg.test_evaluator
    if isinstance(evaluator_cfg, (list, tuple)):
        evaluator_cfg = evaluator_cfg[0]
    metric = METRICS.build(evaluator_cfg)
    size = tuple(cfg.model.data_preprocessor.get('size', (320, 320)))
    batches = make_batches(args.num, args.batch, size)
    sync = torch.cuda.synchronize if device.startswith('cuda') \
        else (lambda: None)
    autocast = torch.autocast(device.split(':')[0], dtype=torch.bfloat16,
                              enabled=args.bf16)

    with torch.no_grad(), autocast:  # warm-up (not timed): model, metric
        metric.process(batches[0], model.test_step(batches[0]))
    metric.results.clear()
    sync()
    infer = metric_time = infer_cpu = metric_cpu = 0.0
    for data in batches:
        start, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad(), autocast:
            outputs = model.test_step(data)
        sync()
        infer += time.perf_counter() - start
        infer_cpu += time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        metric.process(data, outputs)
        metric_time += time.perf_counter() - start
        metric_cpu += time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    metric.compute_metrics(metric.results)
    metric_time += time.perf_counter() - start
    metric_cpu += time.process_time() - cpu

    scale = 10000 / args.num
    print(f'evaluation throughput: {args.config}')
    print(f'device {device}, {torch.get_num_threads()} thread(s), '
          f'{args.num} expressions, batch {args.batch}, '
          f'{"bf16" if args.bf16 else "fp32"}, metric '
          f'{type(metric).__name__}({getattr(metric, "protocol", "")})')
    print(f'{"":<10}{"ms/expr":>10}{"s per 10k":>11}{"CPU s/10k":>11}')
    print(f'{"inference":<10}{1000 * infer / args.num:>10.2f}'
          f'{infer * scale:>11.1f}{infer_cpu * scale:>11.1f}')
    print(f'{"metric":<10}{1000 * metric_time / args.num:>10.2f}'
          f'{metric_time * scale:>11.1f}{metric_cpu * scale:>11.1f}')
    print(f'metric / inference: {100 * metric_time / infer:.1f}% wall, '
          f'{100 * metric_cpu / max(infer_cpu, 1e-9):.1f}% CPU time '
          f'({"measured" if args.num == 10000 else "10k scaled from "}'
          f'{"" if args.num == 10000 else args.num}; on a GPU the wall '
          'share is the one that counts)')


if __name__ == '__main__':
    main()
