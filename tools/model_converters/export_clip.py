"""Export the CLIP of a ``CLIPPretrainer`` checkpoint as an open_clip
state dict.

The output holds the keys of ``open_clip.model.CLIP`` (``visual.*``,
``transformer.*``, ``token_embedding.weight``, ``logit_scale``...), which
``pretrained=`` of ``CLIPVisionEncoder``, ``CLIPTextEncoder`` and
``FrozenCLIPScorer`` (and open_clip itself) load strictly with the same
``arch``. It is written atomically.

Usage::

    python tools/model_converters/export_clip.py \\
        WORK_DIR/best_clip_acc_iter_400.pth \\
        checkpoints/clip-tiny_toycaptions.pth
"""
import argparse
import io
import os
import os.path as osp
from typing import Dict

import torch
from mmengine.runner import CheckpointLoader

from mmwris.models.foundation.checkpoint import DDP_PREFIX, WRAPPER_KEYS
from mmwris.utils import atomic_write_bytes

PREFIX = 'clip.'


def clip_state_dict(state_dict: Dict[str, torch.Tensor]
                    ) -> Dict[str, torch.Tensor]:
    """The ``clip.*`` entries of a ``CLIPPretrainer`` state dict (or of a
    DDP one), without the prefix; the other entries are dropped."""
    clip = {}
    for key, value in state_dict.items():
        if key.startswith(DDP_PREFIX):
            key = key[len(DDP_PREFIX):]
        if key.startswith(PREFIX):
            clip[key[len(PREFIX):]] = value
    if not clip:
        raise KeyError(
            'No "clip." keys: not a CLIPPretrainer checkpoint (keys start '
            f'with {sorted({k.split(".")[0] for k in state_dict})}).')
    return clip


def export_clip(checkpoint: str, out: str) -> Dict[str, torch.Tensor]:
    """Write the open_clip state dict of ``checkpoint`` (an mmengine
    checkpoint of our own training, read by mmengine as ``tools/test.py``
    does) to ``out``."""
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    for key in WRAPPER_KEYS:
        if isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    clip = clip_state_dict(loaded)
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu().contiguous()
                for key, value in clip.items()}, buffer)
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    atomic_write_bytes(out, buffer.getvalue())
    return clip


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export a pretrained CLIP as an open_clip state dict.')
    parser.add_argument('checkpoint', help='CLIPPretrainer checkpoint')
    parser.add_argument('out', help='output .pth (open_clip state dict)')
    return parser.parse_args()


def main():
    args = parse_args()
    clip = export_clip(args.checkpoint, args.out)
    count = sum(value.numel() for value in clip.values())
    print(f'Wrote {len(clip)} tensors ({count / 1e6:.2f} M values) to '
          f'{args.out}')


if __name__ == '__main__':
    main()
