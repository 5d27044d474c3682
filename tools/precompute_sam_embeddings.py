"""Precompute SAM image embeddings (PPT), one float16 .npy per image.

    python tools/precompute_sam_embeddings.py CONFIG \
        --sam-arch vit_h --sam-checkpoint checkpoints/sam_vit_h_4b8939.pth \
        [--out DIR] [--loader train] [--sources classes refer] \
        [--shard i/n] [--batch-size 8] [--input-size 320 320]

Embeds every distinct image (or instance crop) of the config's
``{--loader}_dataloader.dataset`` (a ``CurriculumDataset``: its
``--sources``, all by default). Output: ``--out``, or else, per source,
the ``embedding_dir`` of the ``LoadSAMEmbedding`` in that source's
pipeline (so a config that reads embeddings says where to write them).
Layout: DIR/embeddings/{key}.npy, DIR/index.json (settings, key -> file),
DIR/summary.json (see mmwris/proposals/sam_embeddings.py).

Files are written atomically; a rerun skips finished files; a folder made
with other settings is refused unless ``--overwrite``. ``--shard i/n``
processes every n-th image, for n parallel processes (the union of the
shards is the full store). SAM comes from a local checkpoint only
(``--sam-checkpoint``, or the config's ``sam_embedding_cfg.checkpoint``
or ``model.sam.checkpoint``); the arch likewise (``vit_h`` by default).
Preprocessing: ``--preprocess stretch`` (default, the PPT model's
``FrozenSAM`` frame) with ``--input-size W H`` (default: the config's
``crop_size``; ``--input-size 0 0`` resizes the original image directly)
or ``--preprocess longest_side`` (``SamPredictor``'s frame).
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

import torch
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from generate_proposals import parse_arch, parse_shard  # noqa: E402

from mmwris.proposals.runner import (  # noqa: E402
    ProposalSettingsError, _sort_key)
from mmwris.proposals.sam_embeddings import (  # noqa: E402
    EmbeddingRunner, SAMImageEncoder, embedding_items)
from mmwris.registry import DATASETS  # noqa: E402
from mmwris.utils import register_all_modules  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--out', help='the store (default: the embedding_dir '
                        'of each source\'s LoadSAMEmbedding)')
    parser.add_argument('--loader', default='train',
                        choices=['train', 'val', 'test'])
    parser.add_argument('--sources', nargs='+',
                        help='CurriculumDataset sources (default: all)')
    parser.add_argument('--sam-arch', help='vit_b | vit_l | vit_h | vit_toy '
                        '| JSON dict')
    parser.add_argument('--sam-checkpoint', help='local SAM weights file')
    parser.add_argument('--preprocess', default='stretch',
                        choices=list(SAMImageEncoder.PREPROCESS))
    parser.add_argument('--input-size', type=int, nargs=2,
                        metavar=('W', 'H'),
                        help='network input size (default: crop_size of '
                        'the config; 0 0: none)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--max-items', type=int,
                        help='only the first N images (by key)')
    parser.add_argument('--shard', default='0/1')
    parser.add_argument('--device', default='cuda'
                        if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--overwrite', action='store_true')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def sam_options(cfg: Config, args) -> dict:
    """arch / checkpoint: the flags, else ``sam_embedding_cfg``, else
    ``model.sam``."""
    options = dict(arch='vit_h', checkpoint=None)
    model_sam = dict((cfg.get('model') or {}).get('sam') or {})
    for source in (model_sam, dict(cfg.get('sam_embedding_cfg') or {})):
        options.update({k: source[k] for k in ('arch', 'checkpoint')
                        if source.get(k) is not None})
    if args.sam_arch:
        options['arch'] = parse_arch(args.sam_arch)
    if args.sam_checkpoint:
        options['checkpoint'] = args.sam_checkpoint
    if not options['checkpoint']:
        raise SystemExit('Give --sam-checkpoint (a local SAM weights file; '
                         'nothing is downloaded).')
    return options


def input_size(cfg: Config, args):
    if args.preprocess != 'stretch':
        return None
    if args.input_size is not None:
        return None if min(args.input_size) <= 0 else tuple(args.input_size)
    size = cfg.get('crop_size')
    return tuple(size) if size else None


def store_of(pipeline) -> str:
    """The embedding_dir of a pipeline's LoadSAMEmbedding, or None."""
    for transform in getattr(pipeline, 'transforms', []):
        if type(transform).__name__ == 'LoadSAMEmbedding':
            return transform.embedding_dir
    return None


def stores(dataset, out, sources):
    """``OrderedDict(store -> [dataset, names])`` to embed."""
    if hasattr(dataset, 'names') and hasattr(dataset, 'datasets'):
        unknown = sorted(set(sources or ()) - set(dataset.names))
        if unknown:
            raise SystemExit(f'Unknown --sources {unknown}; the sources are '
                             f'{dataset.names}.')
        parts = [(n, d) for n, d in zip(dataset.names, dataset.datasets)
                 if not sources or n in sources]
    else:
        if sources:
            raise SystemExit('--sources is for a CurriculumDataset.')
        parts = [('dataset', dataset)]
    groups = OrderedDict()
    for name, part in parts:
        folder = out or store_of(part.pipeline)
        if folder is None:
            raise SystemExit(
                f'Source {name!r} has no LoadSAMEmbedding(embedding_dir=...) '
                'in its pipeline: give --out (or --sources for the others).')
        groups.setdefault(folder, []).append((name, part))
    return groups


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shard = parse_shard(args.shard)
    loader = cfg.get(f'{args.loader}_dataloader')
    if not loader or not loader.get('dataset'):
        raise SystemExit(f'{args.config} has no {args.loader}_dataloader.')
    dataset = DATASETS.build(loader['dataset'])
    groups = stores(dataset, args.out, args.sources)
    options = sam_options(cfg, args)
    try:
        encoder = SAMImageEncoder(options['arch'], options['checkpoint'],
                                  preprocess=args.preprocess,
                                  input_size=input_size(cfg, args),
                                  device=args.device)
    except (FileNotFoundError, RuntimeError, KeyError, TypeError,
            ValueError) as e:
        raise SystemExit(f'Cannot build SAM {options["arch"]!r} from '
                         f'{options["checkpoint"]}: {e}')
    failed = 0
    for folder, parts in groups.items():
        unique = {}
        for _, part in parts:
            for item in embedding_items(part):
                old = unique.setdefault(item['key'], item)
                if osp.abspath(old['img_path']) != osp.abspath(
                        item['img_path']):
                    raise SystemExit(
                        f'Two sources give the key {item["key"]} to '
                        f'different images ({old["img_path"]}, '
                        f'{item["img_path"]}): give them separate stores.')
        items = [unique[k] for k in sorted(unique, key=_sort_key)]
        if args.max_items is not None:
            items = items[:args.max_items]
        try:
            summary = EmbeddingRunner(
                encoder, folder, items, batch_size=args.batch_size,
                overwrite=args.overwrite, shard=shard,
                progress=not args.no_progress).run()
        except ProposalSettingsError as e:
            raise SystemExit(str(e))
        failed += summary['failed']
    if failed:
        sys.exit(f'{failed} images failed (listed above and in each '
                 'store\'s summary). Fix them and run again: finished '
                 'images are skipped.')


if __name__ == '__main__':
    main()
