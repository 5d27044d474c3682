"""Training-step time, images/s, peak memory and FLOP share of a model.

For each config: builds the model with random weights (no checkpoint),
feeds one fixed random batch at the config's training batch size (or
``--batch``) with every field the referring models read (expression,
negatives, phrases, IaD partner, mask proposals and their scores, GT mask
and box, a SAM embedding for PPT), and times ``model.train_step`` (the
runner's path: preprocessor, forward, losses, backward, optimiser) in the
modes asked for:

* ``fp32``: the config as is (TF32 off);
* ``bf16``: mmengine's ``AmpOptimWrapper(dtype='bfloat16')``
  (``tools/train.py --amp``);
* ``fast``: bf16 + channels-last + TF32 (``tools/train.py --fast``);
* ``compile``: ``fast`` + ``torch.compile`` of ``train_step`` as mmengine's
  ``compile`` option does it (``--compile``).

PPT samples carry a cached SAM image embedding (``LoadSAMEmbedding``'s
field) unless ``--no-sam-cache``.

The FLOPs of one step are counted (``torch.utils.flop_counter``, forward
and backward) and divided by the step time; ``--ceiling`` measures the
device's bf16 matmul throughput (large square matmuls) and prints the
share of it each mode reaches. Prints one row per (config, mode); the
medians of ``--steps`` steps after ``--warmup``. Not a test.

    python benchmarks/model_steps.py configs/tris/...py configs/pcnet/...py \
        --modes fp32 bf16 fast compile --ceiling
"""
import argparse
import copy
import json
import resource
import statistics
import time
import traceback

import numpy as np
import torch

WORDS = ('man woman dog red blue left right shirt small big the on in with '
         'holding near behind car chair table').split()


def pipeline_option(cfg, transform, key, default):
    """``key`` of the first ``transform`` in the training pipeline."""
    dataset = cfg.train_dataloader.get('dataset', {})
    for step in dataset.get('pipeline', []) or []:
        if step.get('type') == transform:
            return step.get(key, default)
    return default


def fake_batch(cfg, batch, size, sam_shape=None, seed=0):
    """``dict(inputs, data_samples)`` as the training loader packs them."""
    from mmengine.structures import PixelData

    from mmwris.structures import RISDataSample
    rng = np.random.default_rng(seed)
    num_neg = pipeline_option(cfg, 'SampleNegativeTexts', 'num_negatives', 3)
    num_phrases = pipeline_option(cfg, 'LoadPhrases', 'num_phrases', 2)
    num_props = pipeline_option(cfg, 'LoadProposals', 'num_proposals', 40)

    def sentence():
        return ' '.join(rng.choice(WORDS, int(rng.integers(4, 10))))

    h, w = size
    inputs, samples = [], []
    for i in range(batch):
        inputs.append(torch.from_numpy(
            rng.integers(0, 256, (3, h, w), dtype=np.uint8)))
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        mask = np.zeros((1, h, w), np.int64)
        mask[:, y0:y0 + h // 3, x0:x0 + w // 3] = 1
        proposals = np.zeros((num_props, h, w), np.uint8)
        for m in range(num_props):
            py, px = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
            proposals[m, py:py + h // 4, px:px + w // 4] = 1
        sample = RISDataSample()
        sample.set_metainfo(dict(
            text=sentence(), neg_texts=[sentence() for _ in range(num_neg)],
            phrases=[sentence() for _ in range(num_phrases)],
            partner_text=sentence() if i % 2 == 0 else None,
            partner_phrases=[sentence() for _ in range(num_phrases)],
            proposal_scores=rng.random(num_props).tolist(),
            proposal_clip_sim=rng.random(num_props).tolist(),
            img_shape=size, ori_shape=size, pad_shape=size,
            ref_id=i, sent_id=i, image_id=i, split='train',
            gt_bbox=np.array([x0, y0, x0 + w // 3, y0 + h // 3], np.float32)))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(mask))
        sample.gt_proposals = PixelData(data=torch.from_numpy(proposals))
        if sam_shape is not None:  # PPT's cached SAM image embedding
            sample.sam_embedding = torch.from_numpy(
                rng.standard_normal(sam_shape).astype(np.float16))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build(config, mode, device, cfg_options=None):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from mmwris.registry import MODELS
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model_cfg = copy.deepcopy(cfg.model)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if mode != 'fp32':
        optim_cfg.type = 'AmpOptimWrapper'
        optim_cfg.dtype = 'bfloat16'
    if mode in ('fast', 'compile'):
        model_cfg.train_cfg = dict(model_cfg.get('train_cfg') or {},
                                   channels_last=True)
    model = MODELS.build(model_cfg).to(device).train()
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    return cfg, model, optim_wrapper


def set_tf32(enabled):
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def step_flops(model, optim_wrapper, data):
    """FLOPs of one training step (forward + backward), counted."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        model.train_step(data, optim_wrapper)
    return counter.get_total_flops()


def bf16_ceiling(device, n=8192, repeats=20):
    """Measured bf16 matmul throughput (FLOP/s) of ``device``."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def peak_memory_mb(device):
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(config, mode, args, device):
    set_tf32(mode in ('fast', 'compile'))
    cfg, model, optim_wrapper = build(config, mode, device, args.cfg_options)
    batch = args.batch or cfg.train_dataloader.get('batch_size', 8)
    size = tuple(cfg.model.data_preprocessor.get('size', (320, 320)))
    sam = getattr(model, 'sam', None)
    sam_shape = None
    if sam is not None and not args.no_sam_cache:
        sam_shape = (sam.embed_dim, ) + tuple(sam.embedding_size)
    data = fake_batch(cfg, batch, size, sam_shape)
    flops = None
    if args.flops and mode == 'fp32':
        flops = step_flops(model, optim_wrapper, data)
    step = model.train_step
    if mode == 'compile':
        step = torch.compile(model.train_step)
    sync = torch.cuda.synchronize if device.startswith('cuda') \
        else (lambda: None)
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.warmup + args.steps):
        sync()
        start = time.perf_counter()
        step(data, optim_wrapper)
        sync()
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1000)
    ms = statistics.median(times)
    del model, optim_wrapper
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return dict(batch=batch, size=size, ms=ms, img_s=1000 * batch / ms,
                mem=peak_memory_mb(device), flops=flops)


def main():
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--modes', nargs='+', default=['fp32', 'bf16'],
                        choices=['fp32', 'bf16', 'fast', 'compile'])
    parser.add_argument('--batch', type=int, default=None,
                        help='default: the config\'s training batch')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default=None)
    parser.add_argument('--flops', action='store_true',
                        help='count the FLOPs of a step (fp32 mode)')
    parser.add_argument('--ceiling', action='store_true',
                        help='measure the bf16 matmul ceiling (GPU)')
    parser.add_argument('--json', default=None,
                        help='also write the rows to this JSON file')
    parser.add_argument('--no-sam-cache', action='store_true',
                        help='PPT: run SAM\'s image encoder in the step '
                        'instead of feeding cached embeddings')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()

    from mmengine.logging import MMLogger

    from mmwris.utils import register_all_modules
    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='WARNING')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    ceiling = None
    if args.ceiling and device.startswith('cuda'):
        ceiling = bf16_ceiling(device)
        print(f'measured bf16 matmul ceiling: {ceiling / 1e12:.0f} TFLOP/s')
    name = (torch.cuda.get_device_name() if device.startswith('cuda')
            else 'cpu')
    print(f'device: {name}, {args.steps} steps after {args.warmup} warm-up')
    print(f'{"config":<48}{"mode":<9}{"batch":>6}{"ms/step":>10}'
          f'{"img/s":>9}{"peak MB":>9}{"TFLOP/s":>9}{"ceiling":>9}')
    rows = []
    for config in args.configs:
        flops = None
        for mode in args.modes:
            try:
                row = run(config, mode, args, device)
            except Exception as e:  # report and go on with the others
                print(f'{config[-47:]:<48}{mode:<9} failed: '
                      f'{type(e).__name__}: {e}'.splitlines()[0][:200])
                if args.steps > 50:
                    traceback.print_exc()
                continue
            flops = row['flops'] or flops
            rate = share = '-'
            if flops:
                achieved = flops / (row['ms'] / 1000)
                rate = f'{achieved / 1e12:.1f}'
                if ceiling:
                    share = f'{100 * achieved / ceiling:.0f}%'
            print(f'{config[-47:]:<48}{mode:<9}{row["batch"]:>6}'
                  f'{row["ms"]:>10.1f}{row["img_s"]:>9.1f}{row["mem"]:>9.0f}'
                  f'{rate:>9}{share:>9}', flush=True)
            rows.append(dict(row, config=config, mode=mode, size=None,
                             flops=flops, ceiling=ceiling))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
