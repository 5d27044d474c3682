"""Do the training steps wait on PCNet's proposals / PPT's SAM embeddings?

Writes a temporary store of ``--images`` images (``--height`` x
``--width``) with ``--proposals`` RLE mask proposals each (PCNet,
``tools/generate_proposals.py``'s format) and a SAM image embedding each
(PPT, ``[256, 64, 64]`` float16 ``.npy``, the format of
``tools/precompute_sam_embeddings.py``), then times the loading transforms
of a sample: ``LoadProposals`` (+ the resize to the network input that
the pipeline does next) and ``LoadSAMEmbedding`` (memory-mapped).

The loader keeps up when ``batch x ms/sample / num_workers`` (one batch
on the workers, which prefetch in parallel) is below the training step
time; give the measured step with ``--step-ms`` (benchmarks/
gpu_check.sh passes the GPU one). Not a test.

    python benchmarks/heavy_inputs.py --batch 48 --workers 4 --step-ms 250
"""
import argparse
import os
import os.path as osp
import statistics
import tempfile
import time

import cv2
import numpy as np


def write_store(root, images, height, width, proposals, seed=0):
    from mmwris.proposals.sam_embeddings import write_embedding
    from mmwris.proposals.storage import make_record, write_image_proposals
    from mmwris.proposals.sam_embeddings import embedding_path
    from mmwris.proposals.storage import proposal_path
    os.makedirs(osp.dirname(proposal_path(root, 0)), exist_ok=True)
    os.makedirs(osp.dirname(embedding_path(root, '0')), exist_ok=True)
    rng = np.random.default_rng(seed)
    for image_id in range(images):
        masks = np.zeros((proposals, height, width), np.uint8)
        for m in range(proposals):
            y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
            h, w = rng.integers(20, height // 2), rng.integers(20, width // 2)
            masks[m, y:y + h, x:x + w] = 1
        sims = {str(image_id): rng.random(proposals).tolist()}
        write_image_proposals(root, make_record(
            image_id, f'{image_id}.jpg', masks, rng.random(proposals).tolist(),
            sims))
        write_embedding(root, str(image_id),
                        rng.standard_normal((256, 64, 64)).astype(np.float16))


def time_transform(transform, infos, after=None, repeats=3):
    times = []
    for _ in range(repeats):
        for info in infos:
            start = time.perf_counter()
            results = transform(dict(info))
            if after is not None:
                after(results)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=16)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--proposals', type=int, default=40)
    parser.add_argument('--size', type=int, default=320,
                        help='network input side (the resize after loading)')
    parser.add_argument('--batch', type=int, default=48)
    parser.add_argument('--workers', type=int, default=4)
    parser.add_argument('--step-ms', type=float, default=None,
                        help='the training step to compare with')
    args = parser.parse_args()

    from mmwris.datasets.transforms.proposals import LoadProposals
    from mmwris.datasets.transforms.sam_embedding import LoadSAMEmbedding
    with tempfile.TemporaryDirectory() as root:
        write_store(root, args.images, args.height, args.width,
                    args.proposals)
        infos = [dict(image_id=i, sent_id=i, height=args.height,
                      width=args.width) for i in range(args.images)]
        size = (args.size, args.size)

        def resize(results):
            # What Resize does to the seg field next (cv2, <= 512 channels).
            cv2.resize(results['gt_proposals'], size,
                       interpolation=cv2.INTER_NEAREST)

        rows = [
            ('LoadProposals + resize',
             time_transform(LoadProposals(proposal_dir=root,
                                          num_proposals=args.proposals),
                            infos, resize)),
            ('LoadSAMEmbedding (mmap)',
             time_transform(LoadSAMEmbedding(embedding_dir=root), infos)),
        ]
    print(f'{args.images} images {args.height}x{args.width}, '
          f'{args.proposals} proposals each, SAM embeddings [256, 64, 64] '
          f'float16; batch {args.batch}, {args.workers} loader workers')
    print(f'{"transform":<26}{"ms/sample":>10}{"ms/batch/workers":>18}'
          f'{"share of step":>15}')
    for name, ms in rows:
        per_batch = ms * args.batch / max(args.workers, 1)
        share = (f'{100 * per_batch / args.step_ms:.1f}%'
                 if args.step_ms else '-')
        print(f'{name:<26}{ms:>10.2f}{per_batch:>18.1f}{share:>15}')
    if args.step_ms:
        print(f'step {args.step_ms:.1f} ms: the step waits on a transform '
              'when its share is above 100% (all transforms of a sample '
              'add up).')


if __name__ == '__main__':
    main()
