"""Print where a PCNet config reads its phrases and its mask proposals.

    python tools/misc/pcnet_paths.py CONFIG [--cfg-options k=v ...]

prints ``PHRASE_FILE PROPOSAL_DIR`` (the phrase file joined with the
training set's ``data_root``; the ``proposal_dir`` of its LoadProposals).
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
    phrase_file = dataset.get('phrase_file')
    loaders = [t for t in dataset.pipeline if t['type'] == 'LoadProposals']
    if not phrase_file or not loaders:
        raise SystemExit(f'{args.config} is not a PCNet config: it needs '
                         'train_dataloader.dataset.phrase_file and a '
                         'LoadProposals transform.')
    if not osp.isabs(phrase_file):
        phrase_file = osp.join(dataset.get('data_root') or '', phrase_file)
    print(phrase_file, loaders[0]['proposal_dir'])


if __name__ == '__main__':
    main()
