"""Export the SAM of a ``SAMPretrainer`` checkpoint as a plain
``segment_anything`` state dict.

The output holds the keys of ``segment_anything.modeling.Sam``
(``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``,
``pixel_mean``, ``pixel_std``), like the released ``sam_vit_*.pth``, so
``build_sam(arch, OUT)``, ``SAMProposalGenerator`` and
``tools/generate_proposals.py --backend sam --sam-arch ARCH
--sam-checkpoint OUT`` load it strictly. The keys are checked against
``build_sam_model(arch)`` before the file is written (atomically).

Usage::

    python tools/model_converters/export_sam.py \\
        work_dirs/sam-tiny_1xb8-400_toymasks-128/iter_400.pth \\
        checkpoints/sam-tiny_toymasks.pth --arch vit_toy
"""
import argparse
import io
import json
import os
import os.path as osp
from typing import Dict

import torch
from mmengine.runner import CheckpointLoader

from mmwris.models.foundation.checkpoint import list_keys
from mmwris.models.foundation.sam import build_sam_model
from mmwris.utils import atomic_write_bytes

PREFIX = 'sam.'


def sam_state_dict(state_dict: Dict[str, torch.Tensor], arch
                   ) -> Dict[str, torch.Tensor]:
    """The ``sam.*`` entries without the prefix, checked to be exactly the
    keys and shapes of ``build_sam_model(arch)`` (a ``module.`` prefix of
    a DDP state dict is dropped)."""
    state_dict = {key[len('module.'):] if key.startswith('module.') else key:
                  value for key, value in state_dict.items()}
    sam = {key[len(PREFIX):]: value for key, value in state_dict.items()
           if key.startswith(PREFIX)}
    if not sam:
        raise KeyError(
            'No "sam." keys: not a SAMPretrainer checkpoint (keys start '
            f'with {sorted({k.split(".")[0] for k in state_dict})}).')
    own = build_sam_model(arch).state_dict()
    missing = [k for k in own if k not in sam]
    unexpected = [k for k in sam if k not in own]
    mismatched = [k for k in own if k in sam and sam[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise KeyError(
            f'The checkpoint is not SAM "{arch}": missing '
            f'{list_keys(missing)}, unexpected {list_keys(unexpected)}, '
            f'other shapes {list_keys(mismatched)}.')
    return sam


def export_sam(checkpoint: str, out: str, arch='vit_toy'
               ) -> Dict[str, torch.Tensor]:
    """Write the plain SAM state dict of ``checkpoint`` to ``out``."""
    # A runner checkpoint (with its message hub): read as the runner does.
    saved = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    sam = sam_state_dict(saved.get('state_dict', saved), arch)
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu().contiguous()
                for key, value in sam.items()}, buffer)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    atomic_write_bytes(out, buffer.getvalue())
    return sam


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export a pretrained SAM as a segment_anything state '
        'dict.')
    parser.add_argument('checkpoint', help='SAMPretrainer checkpoint')
    parser.add_argument('out', help='output .pth (Sam state dict)')
    parser.add_argument('--arch', default='vit_toy',
                        help='SAM architecture name or JSON settings dict '
                        '(the model.arch of the config)')
    return parser.parse_args()


def main():
    args = parse_args()
    arch = json.loads(args.arch) if args.arch.lstrip().startswith('{') \
        else args.arch
    sam = export_sam(args.checkpoint, args.out, arch)
    count = sum(value.numel() for value in sam.values())
    print(f'Wrote {len(sam)} tensors ({count / 1e6:.3f} M values) of SAM '
          f'{args.arch} to {args.out}')


if __name__ == '__main__':
    main()
