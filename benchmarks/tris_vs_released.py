"""Our TRIS step-1 training step against the released code's, same inputs.

Both models get random weights (no checkpoint) and the same batch: random
images and expressions. Ours runs the runner's path,
``model.train_step(data, optim_wrapper)`` (data preprocessor, forward,
classification loss, backward, the config's AdamW wrapper); the released
model runs the body of ``train_stage1.train_one_epoch`` on the normalised
images and token ids its dataset hands over. The calibration is off in
both (the issue's protocol).

Our process applies ``tools/train.py``'s CPU memory setting
(``keep_freed_memory``: freed memory stays in the process) unless
``--ours-malloc default``; the released one runs with glibc's defaults, as
its ``train_stage1.py`` does, unless ``--released-malloc keep``.

Each model lives in its own process (spawned; a shared heap would let one
model's freed memory change the other's page faults) and the two step in
turn (released, ours, released, ...), so that load on a shared machine
hits both alike. Per step the wall time and the process CPU time (user +
system, all threads) are taken; the medians and their ratios are printed.
On a machine shared with other jobs the CPU time is the steadier measure.
Not a test.

    OMP_NUM_THREADS=1 python benchmarks/tris_vs_released.py \
        --released /tmp/tris_released --batch 8 --steps 9

``--profile ROWS`` prints torch.profiler's top operators of one more step
of each. Without ``--released`` only our step is timed.
"""
import argparse
import copy
import os
import resource
import statistics
import sys
import time

import torch
import torch.multiprocessing as mp

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER_CONFIG = 'configs/tris/tris_clip-r50_1xb48-15e_refcoco-unc-320x320.py'
WORDS = ('man woman dog red blue left right shirt small big the on in with '
         'holding near behind car chair table').split()


def make_batch(batch: int, size, seed: int = 0):
    """uint8 BGR images ``[B, 3, H, W]`` (what the loader packs) and texts."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, *size), generator=gen,
                           dtype=torch.uint8)
    texts = []
    for i in range(batch):
        idx = torch.randint(len(WORDS), (6 + i % 5, ), generator=gen)
        texts.append(' '.join(WORDS[j] for j in idx))
    return images, texts


def build_ours(config: str, device: str, calibration: bool = False,
               mode: str = 'fp32'):
    """Our segmentor of ``config`` (random weights; the calibration loss
    removed unless ``calibration``) and its optimiser wrapper; ``mode``
    ``'bf16'``: mmengine's bf16 ``AmpOptimWrapper`` (``tools/train.py
    --amp``), ``'fast'``: bf16 + channels-last + TF32 (``--fast``)."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper

    from mmwris.registry import MODELS
    from mmwris.utils import register_all_modules

    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='WARNING')
    cfg = Config.fromfile(config)
    model_cfg = copy.deepcopy(cfg.model)
    if not calibration and 'loss_cal' in model_cfg.decode_head:
        model_cfg.decode_head.loss_cal = None
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if mode in ('bf16', 'fast'):
        optim_cfg.type = 'AmpOptimWrapper'
        optim_cfg.dtype = 'bfloat16'
    if mode == 'fast':
        model_cfg.train_cfg = dict(model_cfg.get('train_cfg') or {},
                                   channels_last=True)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = MODELS.build(model_cfg).to(device).train()
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    return model, optim_wrapper, cfg


def our_data(images, texts, size):
    from mmseg.structures import SegDataSample
    samples = []
    for text in texts:
        sample = SegDataSample()
        sample.set_metainfo(dict(text=text, neg_texts=[], img_shape=size,
                                 ori_shape=size, pad_shape=size))
        samples.append(sample)
    return dict(inputs=list(images), data_samples=samples)


def released_inputs(images, texts, mean, std, device):
    """What the released dataset hands over: RGB images normalised with the
    same statistics, and the released token ids (EOT cut when long)."""
    from mmwris.models.foundation.clip import clip_token_ids
    rgb = images.flip(1).float()
    rgb = (rgb - mean) / std
    ids, _ = clip_token_ids(texts, 20, keep_eot=False)
    return rgb.contiguous().to(device), ids.to(device)


def build_step(kind: str, args):
    """A no-argument function running one training step of ``kind``."""
    torch.manual_seed(0)
    if kind == 'ours':
        ours, optim_wrapper, cfg = build_ours(args.config, args.device,
                                              mode=args.ours_mode)
        size = tuple(cfg.model.data_preprocessor.get('size', (320, 320)))
        data = our_data(*make_batch(args.batch, size), size)
        return lambda: ours.train_step(data, optim_wrapper)
    # Only the config is read here: no model of ours in this process.
    from mmengine.config import Config
    preprocessor = Config.fromfile(args.config).model.data_preprocessor
    size = tuple(preprocessor.get('size', (320, 320)))
    mean = torch.tensor(preprocessor.mean).view(-1, 1, 1)
    std = torch.tensor(preprocessor.std).view(-1, 1, 1)
    images, texts = make_batch(args.batch, size)
    rel_images, rel_ids = released_inputs(images, texts, mean, std,
                                          args.device)
    sys.path.insert(0, HERE)
    from released_tris import build_released_step1, released_step
    released, optimizer = build_released_step1(args.released, args.device)
    released.train()
    return lambda: released_step(released, optimizer, rel_images, rel_ids)


def keep_freed_memory() -> bool:
    """``tools/train.py``'s glibc setting for CPU training, imported from
    it so that the benchmark applies exactly what training does."""
    import importlib.util
    path = os.path.join(os.path.dirname(HERE), 'tools', 'train.py')
    spec = importlib.util.spec_from_file_location('mmwris_train_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.keep_freed_memory()


def worker(kind: str, args, conn) -> None:
    """Build ``kind``'s step, then run one step per ``'step'`` message and
    answer ``(wall ms, CPU ms, minor page faults)``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = args.ours_malloc if kind == 'ours' else args.released_malloc
    if malloc == 'auto':
        malloc = 'keep' if kind == 'ours' and args.device == 'cpu' \
            else 'default'
    if malloc == 'keep' and not keep_freed_memory():
        raise RuntimeError('glibc mallopt is not available here.')
    step = build_step(kind, args)
    sync = torch.cuda.synchronize if args.device.startswith('cuda') \
        else (lambda: None)
    conn.send('ready')
    while True:
        message = conn.recv()
        if message == 'stop':
            return
        if message == 'profile':
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            conn.send(prof.key_averages().table(
                sort_by='self_cpu_time_total', row_limit=args.profile))
            continue
        sync()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        cpu, wall = time.process_time(), time.perf_counter()
        step()
        sync()
        conn.send(((time.perf_counter() - wall) * 1000,
                   (time.process_time() - cpu) * 1000,
                   resource.getrusage(resource.RUSAGE_SELF).ru_minflt -
                   faults))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=PAPER_CONFIG)
    parser.add_argument('--released', default=None,
                        help='path of a fawnliu/TRIS checkout')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=9)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads per model (0: torch default)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--ours-mode', default='fp32',
                        choices=['fp32', 'bf16', 'fast'],
                        help='our precision / memory format (the released '
                        'model always runs its fp32 code)')
    parser.add_argument('--ours-malloc', default='auto',
                        choices=['auto', 'default', 'keep'],
                        help='glibc malloc of our process: auto = what '
                        'tools/train.py does (keep on CPU, see its '
                        'keep_freed_memory), default = glibc defaults')
    parser.add_argument('--released-malloc', default='default',
                        choices=['default', 'keep'],
                        help='glibc malloc of the released process '
                        '(default: as its train_stage1.py runs)')
    parser.add_argument('--profile', type=int, default=0, metavar='ROWS',
                        help='print the top ROWS operators of one step')
    args = parser.parse_args()

    kinds = ['released', 'ours'] if args.released else ['ours']
    ctx = mp.get_context('spawn')
    conns, procs = {}, []
    for kind in kinds:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(kind, args, child))
        proc.start()
        conns[kind] = parent
        procs.append(proc)
    for conn in conns.values():
        assert conn.recv() == 'ready'
    results = {kind: [] for kind in kinds}
    for step in range(args.warmup + args.steps):
        for kind, conn in conns.items():
            conn.send('step')
            result = conn.recv()
            if step >= args.warmup:
                results[kind].append(result)
    if args.profile:
        for kind, conn in conns.items():
            conn.send('profile')
            print(f'--- {kind}: top {args.profile} operators by self CPU')
            print(conn.recv())
    for conn in conns.values():
        conn.send('stop')
    for proc in procs:
        proc.join()

    threads = args.threads or torch.get_num_threads()
    print(f'TRIS step 1 training step, calibration off: {args.config} '
          f'(ours: {args.ours_mode}); glibc malloc: ours {args.ours_malloc}'
          f', released {args.released_malloc}')
    print(f'device {args.device}, {threads} thread(s) per model, batch '
          f'{args.batch}, {args.steps} alternating steps after '
          f'{args.warmup} warm-up, each model in its own process')
    print(f'{"model":<10}{"wall ms":>9}{"CPU ms":>9}{"img/s":>8}'
          f'{"faults":>9}  wall ms of every step')
    medians = {}
    for kind, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        faults = statistics.median(r[2] for r in rows)
        medians[kind] = (wall, cpu)
        print(f'{kind:<10}{wall:>9.0f}{cpu:>9.0f}'
              f'{1000 * args.batch / wall:>8.2f}{faults:>9.0f}  '
              + ' '.join(f'{r[0]:.0f}' for r in rows))
    if 'released' in medians:
        ours, rel = medians['ours'], medians['released']
        pairs = statistics.median(
            o[0] / r[0] for o, r in zip(results['ours'],
                                        results['released']))
        print(f'ours / released: wall {ours[0] / rel[0]:.3f}x (median of '
              f'per-pair ratios {pairs:.3f}x), CPU time '
              f'{ours[1] / rel[1]:.3f}x; throughput ours / released '
              f'{rel[0] / ours[0]:.2f}x')


if __name__ == '__main__':
    main()
