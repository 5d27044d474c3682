"""Evaluation throughput: inference time against metric time.

Builds the model of a config with random weights, feeds ``--num``
expressions (random images at the network size, original sizes drawn
around COCO's 640x480, GT masks and boxes at the original size, as the
test pipeline packs them) through ``model.test_step`` (preprocessor,
forward, mask decoding at the original resolution) and the config's
evaluator, timing both. The metric runs twice per batch, side by side (in
alternating order): ``RISMetric.process`` on the model's tensors (scored on
their device) and on the same samples converted to numpy first (the host
path; the conversion, a device-to-host copy, is timed with it); both must
store identical results. Prints the median time per expression over the
batches, the time for 10k expressions at that median, the
``compute_metrics`` time and each metric's share of the inference time (the
target is < 5%). Not a test.

    python benchmarks/eval_throughput.py --num 10000 --batch 64   # GPU
    OMP_NUM_THREADS=1 python benchmarks/eval_throughput.py --num 48 --batch 16
"""
import argparse
import copy
import statistics
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


def numpy_samples(samples):
    """The samples as dicts with every ``{'data': tensor}`` map converted
    to numpy (the input of the metric's host path)."""
    from mmwris.evaluation.functional import to_numpy
    converted = []
    for sample in samples:
        sample = sample.to_dict()
        converted.append({
            k: dict(v, data=to_numpy(v['data']))
            if isinstance(v, dict) and 'data' in v else v
            for k, v in sample.items()
        })
    return converted


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=PAPER_CONFIG)
    parser.add_argument('--num', type=int, default=10000)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--device', default=None)
    parser.add_argument('--bf16', action='store_true',
                        help='inference under bf16 autocast')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--box-mode', default=None,
                        choices=('largest_cc', 'all', 'any_box'),
                        help="override the metric's box_mode")
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
    if args.box_mode is not None:
        evaluator_cfg = dict(evaluator_cfg, box_mode=args.box_mode)
    metrics = dict(numpy=METRICS.build(evaluator_cfg),
                   tensor=METRICS.build(evaluator_cfg))
    size = tuple(cfg.model.data_preprocessor.get('size', (320, 320)))
    batches = make_batches(args.num, args.batch, size)
    sync = torch.cuda.synchronize if device.startswith('cuda') \
        else (lambda: None)
    autocast = torch.autocast(device.split(':')[0], dtype=torch.bfloat16,
                              enabled=args.bf16)

    def run_metric(name, data, outputs):
        """Wall and CPU seconds of one metric's ``process`` of a batch."""
        sync()
        start, cpu = time.perf_counter(), time.process_time()
        samples = numpy_samples(outputs) if name == 'numpy' else outputs
        metrics[name].process(data, samples)
        sync()
        return time.perf_counter() - start, time.process_time() - cpu

    with torch.no_grad(), autocast:  # warm-up (not timed): model, metric
        outputs = model.test_step(batches[0])
    for name in metrics:
        run_metric(name, batches[0], outputs)
        metrics[name].results.clear()
    sync()
    per_expr = dict(inference=[], numpy=[], tensor=[])
    per_expr_cpu = dict(inference=[], numpy=[], tensor=[])
    for i, data in enumerate(batches):
        n = len(data['inputs'])
        start, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad(), autocast:
            outputs = model.test_step(data)
        sync()
        per_expr['inference'].append((time.perf_counter() - start) / n)
        per_expr_cpu['inference'].append((time.process_time() - cpu) / n)
        for name in (('numpy', 'tensor') if i % 2 else ('tensor', 'numpy')):
            wall, cpu = run_metric(name, data, outputs)
            per_expr[name].append(wall / n)
            per_expr_cpu[name].append(cpu / n)
    if metrics['numpy'].results != metrics['tensor'].results:
        raise RuntimeError('the tensor and numpy metric paths disagree')
    compute = {}
    for name, metric in metrics.items():
        start = time.perf_counter()
        metric.compute_metrics(metric.results)
        compute[name] = time.perf_counter() - start

    median = {k: statistics.median(v) for k, v in per_expr.items()}
    median_cpu = {k: statistics.median(v) for k, v in per_expr_cpu.items()}
    metric = metrics['tensor']
    print(f'evaluation throughput: {args.config}')
    print(f'device {device}, {torch.get_num_threads()} thread(s), '
          f'{args.num} expressions, batch {args.batch}, '
          f'{"bf16" if args.bf16 else "fp32"}, metric '
          f'{type(metric).__name__}({getattr(metric, "protocol", "")}, '
          f'box_mode={getattr(metric, "box_mode", "")})')
    print(f'medians over {len(batches)} batches; results of the two metric '
          'paths identical')
    print(f'{"":<16}{"ms/expr":>10}{"s per 10k":>11}{"CPU ms/expr":>13}'
          f'{"of infer.":>11}')
    rows = (('inference', 'inference'), ('metric (numpy)', 'numpy'),
            ('metric (tensor)', 'tensor'))
    for label, key in rows:
        print(f'{label:<16}{1000 * median[key]:>10.2f}'
              f'{10000 * median[key]:>11.1f}'
              f'{1000 * median_cpu[key]:>13.2f}'
              f'{100 * median[key] / median["inference"]:>10.1f}%')
    print(f'compute_metrics over {args.num} expressions: numpy '
          f'{1000 * compute["numpy"]:.1f} ms, tensor '
          f'{1000 * compute["tensor"]:.1f} ms (on a GPU the wall share is '
          'the one that counts)')

if __name__ == '__main__':
    main()
