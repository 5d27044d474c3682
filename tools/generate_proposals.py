"""Class-agnostic mask proposals per image for PCNet.

    python tools/generate_proposals.py CONFIG --out DIR \
        --backend sam --sam-arch vit_h --sam-checkpoint sam_vit_h_4b8939.pth \
        --clip-arch ViT-B-16 --clip-weights ViT-B-16.pt [--split train val]

Reads the images and expressions of the config's
``train_dataloader.dataset`` (data_root, ann_file, refs_file,
data_prefix.img_path; splits: ``--split``, default every split of the refs
file) and processes every image once, however many refs and splits share
it. Per image: the backend's masks (``sam``: SAM's automatic mask
generator; ``regions``: colour regions, for flat-coloured synthetic
images), the top ``--top-n`` by score and, unless ``--no-clip``, the CLIP
similarity of each with every expression of the image.

Writes DIR/proposals/{image_id}.json (COCO RLE masks, scores, clip_sim),
DIR/index.json (settings, image_id -> file and count) and DIR/summary.json.
Files are written atomically; a restart skips finished images. Running into
a folder made with other settings is an error unless ``--overwrite``.
``--clip-arch`` and ``--sam-arch`` also take JSON dicts (an open_clip CLIP
kwargs dict; SAM settings, see mmwris.proposals.SAM_ARCHS).
``--shard i/n`` processes every n-th image, for n parallel processes.
"""
import argparse
import json
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction

from mmwris.datasets.refcoco import load_instances, load_refs
from mmwris.models.foundation import FrozenCLIPScorer
from mmwris.proposals import (ProposalCLIPSimilarity, ProposalRunner,
                              ProposalSettingsError, images_from_refs)
from mmwris.registry import TASK_UTILS
from mmwris.utils import register_all_modules


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config with a referring dataset')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--split', nargs='+',
                        help='refer splits (default: all in the refs file)')
    parser.add_argument('--backend', choices=['sam', 'regions'],
                        default='sam')
    parser.add_argument('--sam-arch', default='vit_h',
                        help='vit_b | vit_l | vit_h | vit_tiny | JSON dict')
    parser.add_argument('--sam-checkpoint', help='local SAM weights file')
    parser.add_argument('--points-per-side', type=int, default=32)
    parser.add_argument('--points-per-batch', type=int, default=64)
    parser.add_argument('--pred-iou-thresh', type=float, default=0.88)
    parser.add_argument('--stability-score-thresh', type=float,
                        default=0.95)
    parser.add_argument('--box-nms-thresh', type=float, default=0.7)
    parser.add_argument('--crop-n-layers', type=int, default=0)
    parser.add_argument('--min-mask-region-area', type=int, default=0)
    parser.add_argument('--sam-score', default='iou_stability',
                        choices=['iou_stability', 'predicted_iou'])
    parser.add_argument('--num-colours', type=int, default=8,
                        help='regions backend: k-means colours')
    parser.add_argument('--top-n', type=int, default=40,
                        help='proposals kept per image (by score)')
    parser.add_argument('--no-clip', action='store_true',
                        help='skip the CLIP similarities')
    parser.add_argument('--clip-arch',
                        help='open_clip model name or JSON kwargs dict')
    parser.add_argument('--clip-weights', help='local CLIP weights file')
    parser.add_argument('--clip-batch-size', type=int, default=32)
    parser.add_argument('--max-images', type=int,
                        help='only the first N images (by image_id)')
    parser.add_argument('--shard', default='0/1',
                        help='i/n: process images i, i+n, ... (default 0/1)')
    parser.add_argument('--device',
                        default='cuda' if torch.cuda.is_available() else
                        'cpu')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace proposals made with other settings')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config')
    return parser.parse_args()


def parse_arch(value: str):
    """An architecture name, or a JSON dict when it starts with ``{``."""
    if value.lstrip().startswith('{'):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise SystemExit(f'Cannot parse the architecture JSON '
                             f'{value!r}: {e}')
    return value


def parse_shard(value: str):
    try:
        index, count = (int(v) for v in value.split('/'))
    except ValueError:
        raise SystemExit(f'--shard must be i/n (e.g. 0/4), not {value!r}.')
    if not 0 <= index < count:
        raise SystemExit(f'--shard {value}: need 0 <= i < n.')
    return index, count


def dataset_images(cfg: Config, splits, max_images):
    """Image entries (with all their expressions) of the config's dataset."""
    dataset = cfg.train_dataloader.dataset
    root = dataset.get('data_root') or ''

    def join(path):
        return path if osp.isabs(path) else osp.join(root, path)

    refs_file = join(dataset.get('refs_file', 'refs(unc).p'))
    ann_file = join(dataset.get('ann_file', 'instances.json'))
    img_dir = join(dict(dataset.get('data_prefix') or {}).get(
        'img_path', 'images'))
    refs = load_refs(refs_file)
    available = sorted({ref['split'] for ref in refs})
    unknown = [s for s in splits or () if s not in available]
    if unknown:
        raise SystemExit(f'{refs_file} has no split {unknown}; it has '
                         f'{available}.')
    images, _ = load_instances(ann_file)
    entries = images_from_refs(refs, images, img_dir, splits)
    if max_images is not None:
        entries = entries[:max_images]
    return entries


def build_backend(args):
    if args.backend == 'regions':
        return TASK_UTILS.build(dict(type='ColourRegionProposalGenerator',
                                     num_colours=args.num_colours))
    if not args.sam_checkpoint:
        raise SystemExit('--backend sam needs --sam-checkpoint (a local SAM '
                         'weights file; nothing is downloaded).')
    try:
        return TASK_UTILS.build(dict(
            type='SAMProposalGenerator', arch=parse_arch(args.sam_arch),
            checkpoint=args.sam_checkpoint,
            points_per_side=args.points_per_side,
            points_per_batch=args.points_per_batch,
            pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_score_thresh,
            box_nms_thresh=args.box_nms_thresh,
            crop_n_layers=args.crop_n_layers,
            min_mask_region_area=args.min_mask_region_area,
            score=args.sam_score, device=args.device))
    except (FileNotFoundError, RuntimeError, KeyError, TypeError) as e:
        raise SystemExit(f'Cannot build SAM: {e}')


def build_clip(args):
    if args.no_clip:
        return None, None
    if not args.clip_arch or not args.clip_weights:
        raise SystemExit('CLIP similarities need --clip-arch and '
                         '--clip-weights (a local file); or pass --no-clip.')
    arch = parse_arch(args.clip_arch)
    try:
        scorer = FrozenCLIPScorer(arch, args.clip_weights).to(args.device)
    except (FileNotFoundError, RuntimeError, TypeError) as e:
        raise SystemExit(f'Cannot build CLIP: {e}')
    settings = dict(arch=arch, weights=osp.abspath(args.clip_weights))
    return ProposalCLIPSimilarity(scorer, args.clip_batch_size), settings


def main():
    args = parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shard = parse_shard(args.shard)
    entries = dataset_images(cfg, args.split, args.max_images)
    generator = build_backend(args)
    clip, clip_settings = build_clip(args)
    try:
        runner = ProposalRunner(generator, args.out, entries,
                                top_n=args.top_n, clip=clip,
                                clip_settings=clip_settings,
                                overwrite=args.overwrite, shard=shard)
        summary = runner.run()
    except ProposalSettingsError as e:
        raise SystemExit(str(e))
    if summary['failed']:
        sys.exit(f'{summary["failed"]} images failed (listed above and in '
                 f'{args.out}/summary.json). Fix them and run again: '
                 'finished images are skipped.')


if __name__ == '__main__':
    main()
