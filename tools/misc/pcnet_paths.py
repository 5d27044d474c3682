"""Print where a PCNet config reads its phrases and its mask proposals.

    python tools/misc/pcnet_paths.py CONFIG [--cfg-options k=v ...]

prints ``PHRASE_FILE PROPOSAL_DIR``: the training set's ``phrase_file``
and ``proposal_dir``, joined with its ``data_root`` when relative.
"""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    dataset = cfg.train_dataloader.dataset
    paths = [dataset.get('phrase_file'), dataset.get('proposal_dir')]
    if not all(paths):
        raise SystemExit(f'{args.config} is not a PCNet config: it needs '
                         'train_dataloader.dataset.phrase_file and '
                         '.proposal_dir.')
    root = dataset.get('data_root') or ''
    print(*(path if osp.isabs(path) else osp.join(root, path)
            for path in paths))


if __name__ == '__main__':
    main()
