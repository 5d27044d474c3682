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
Settings come from the config's ``proposal_cfg`` (backend, top_n,
num_colours, sam=dict(arch, checkpoint, points_per_side, ...), clip=dict(
arch, weights, batch_size) or clip=None for no similarities); the flags
override them.
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


# What a config without proposal_cfg (and no flag) gets.
DEFAULTS = dict(
    backend='sam',
    top_n=40,
    num_colours=8,
    sam=dict(arch='vit_h', checkpoint=None, points_per_side=32,
             points_per_batch=64, pred_iou_thresh=0.88,
             stability_score_thresh=0.95, box_nms_thresh=0.7,
             crop_n_layers=0, min_mask_region_area=0,
             score='iou_stability'),
    clip=dict(arch=None, weights=None, batch_size=32))
SAM_FLAGS = (('--points-per-side', int), ('--points-per-batch', int),
             ('--pred-iou-thresh', float), ('--stability-score-thresh', float),
             ('--box-nms-thresh', float), ('--crop-n-layers', int),
             ('--min-mask-region-area', int))


def proposal_options(cfg: Config, args) -> dict:
    """DEFAULTS, updated by the config's ``proposal_cfg``, then by the
    flags given."""
    options = dict(DEFAULTS, sam=dict(DEFAULTS['sam']),
                   clip=dict(DEFAULTS['clip']))
    for key, value in dict(cfg.get('proposal_cfg') or {}).items():
        if key in ('sam', 'clip') and value is not None:
            options[key] = dict(options[key] or {}, **value)
        else:
            options[key] = value
    flags = dict(backend=args.backend, top_n=args.top_n,
                 num_colours=args.num_colours)
    options.update({k: v for k, v in flags.items() if v is not None})
    sam = dict(arch=args.sam_arch and parse_arch(args.sam_arch),
               checkpoint=args.sam_checkpoint, score=args.sam_score,
               **{flag[2:].replace('-', '_'): getattr(
                   args, flag[2:].replace('-', '_'))
                  for flag, _ in SAM_FLAGS})
    options['sam'].update({k: v for k, v in sam.items() if v is not None})
    clip = dict(arch=args.clip_arch and parse_arch(args.clip_arch),
                weights=args.clip_weights, batch_size=args.clip_batch_size)
    clip = {k: v for k, v in clip.items() if v is not None}
    if args.no_clip:
        options['clip'] = None
    elif clip:
        options['clip'] = dict(options['clip'] or DEFAULTS['clip'], **clip)
    return options


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config with a referring dataset')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--split', nargs='+',
                        help='refer splits (default: all in the refs file)')
    # Unset flags (None) keep the config's proposal_cfg (else DEFAULTS).
    parser.add_argument('--backend', choices=['sam', 'regions'])
    parser.add_argument('--sam-arch',
                        help='vit_b | vit_l | vit_h | vit_tiny | JSON dict')
    parser.add_argument('--sam-checkpoint', help='local SAM weights file')
    for flag, kind in SAM_FLAGS:
        parser.add_argument(flag, type=kind)
    parser.add_argument('--sam-score',
                        choices=['iou_stability', 'predicted_iou'])
    parser.add_argument('--num-colours', type=int,
                        help='regions backend: k-means colours')
    parser.add_argument('--top-n', type=int,
                        help='proposals kept per image (by score)')
    parser.add_argument('--no-clip', action='store_true',
                        help='skip the CLIP similarities')
    parser.add_argument('--clip-arch',
                        help='open_clip model name or JSON kwargs dict')
    parser.add_argument('--clip-weights', help='local CLIP weights file')
    parser.add_argument('--clip-batch-size', type=int)
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


def build_backend(options, device):
    if options['backend'] == 'regions':
        return TASK_UTILS.build(dict(type='ColourRegionProposalGenerator',
                                     num_colours=options['num_colours']))
    sam = dict(options['sam'])
    if not sam.get('checkpoint'):
        raise SystemExit('--backend sam needs --sam-checkpoint (a local SAM '
                         'weights file; nothing is downloaded), or '
                         'proposal_cfg.sam.checkpoint.')
    try:
        return TASK_UTILS.build(
            dict(type='SAMProposalGenerator', device=device, **sam))
    except (FileNotFoundError, RuntimeError, KeyError, TypeError) as e:
        raise SystemExit(f'Cannot build SAM: {e}')


def build_clip(options, device):
    clip = options['clip']
    if clip is None:
        return None, None
    if not clip.get('arch') or not clip.get('weights'):
        raise SystemExit('CLIP similarities need --clip-arch and '
                         '--clip-weights (a local file), or proposal_cfg.'
                         'clip; or pass --no-clip.')
    arch, weights = clip['arch'], clip['weights']
    try:
        scorer = FrozenCLIPScorer(arch, weights).to(device)
    except (FileNotFoundError, RuntimeError, TypeError) as e:
        raise SystemExit(f'Cannot build CLIP: {e}')
    settings = dict(arch=arch, weights=osp.abspath(weights))
    return ProposalCLIPSimilarity(scorer, clip['batch_size']), settings


def main():
    args = parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shard = parse_shard(args.shard)
    entries = dataset_images(cfg, args.split, args.max_images)
    options = proposal_options(cfg, args)
    generator = build_backend(options, args.device)
    clip, clip_settings = build_clip(options, args.device)
    try:
        runner = ProposalRunner(generator, args.out, entries,
                                top_n=options['top_n'], clip=clip,
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
