"""Convert a released PCNet checkpoint (zaiquanyang/Boosting_WRIS) to mmwris
keys.

The released ``train_prog.py`` saves ``{'model': state_dict, 'optimizer',
'lr_scheduler', 'epoch'}`` of the unwrapped ``TRIS`` network
(``model/model_prog_v5.py``), without a ``module.`` prefix. Its keys map to
``PCNetSegmentor`` with ``PCNetReleasedHead`` (``configs/pcnet/pcnet_clip-
r50_*``, ``num_blocks=4``):

* the CLIP backbone exactly as for TRIS (``tris2mmwris.py``):
  ``backbone.visual.*`` -> ``image_encoder.visual.*``, the text tower ->
  ``text_encoder.*``; dropped: ``backbone.visual.attnpool.*`` (run by the
  released code, its output discarded) and ``backbone.logit_scale``;
* ``logit_scale`` -> ``decode_head.logit_scale`` (never trained),
  ``c4_vis_project`` -> ``decode_head.vis_proj``, ``global_lan_project``
  -> ``decode_head.text_proj`` (sentences and phrases);
* ``attn_fusion_vl.{k}.*`` (four ``bilateral_prompt`` blocks) ->
  ``decode_head.stages.{k}.prompting.*`` with TRIS's block names
  (``v_proj1/2/3`` -> ``query_v/key_v/value_v``, ``t_proj1/2/3`` ->
  ``query_t/key_t/value_t``, ``v_output`` -> ``out_v``, ``t_output.0`` ->
  ``out_t``).

The optimizer and scheduler states are not converted.

Usage::

    python tools/model_converters/pcnet2mmwris.py RELEASED.pth OUT.pth
"""
import argparse
import io
import os.path as osp
import re
import sys
from typing import Dict, Optional

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import tris2mmwris  # noqa: E402

from mmwris.models.foundation.checkpoint import read_state_dict  # noqa
from mmwris.utils import atomic_write_bytes  # noqa: E402

SOURCE = 'zaiquanyang/Boosting_WRIS'
COMMIT = '752868b9a922127bfd584e43103953901eaca045'

HEAD_PREFIXES = (
    ('c4_vis_project.', 'decode_head.vis_proj.'),
    ('global_lan_project.', 'decode_head.text_proj.'),
)
HEAD_KEYS = {'logit_scale': 'decode_head.logit_scale'}
BLOCK = re.compile(r'attn_fusion_vl\.(\d+)\.')
# The names inside one bilateral block are TRIS's (``attn_fusion.*``).
BLOCK_NAMES = tuple(
    (old[len('attn_fusion.'):], new[len('decode_head.prompting.'):])
    for old, new in tris2mmwris.STEP1_PREFIXES
    if old.startswith('attn_fusion.'))
MARKERS = ('attn_fusion_vl.', 'c4_vis_project.', 'global_lan_project.')


def convert_key(key: str) -> Optional[str]:
    """Our key for a released one (None: dropped)."""
    if key.startswith('backbone.'):
        return tris2mmwris.convert_key(key, stage=1)
    if key in HEAD_KEYS:
        return HEAD_KEYS[key]
    for old, new in HEAD_PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    match = BLOCK.match(key)
    if match:
        rest = key[match.end():]
        for old, new in BLOCK_NAMES:
            if rest.startswith(old):
                return (f'decode_head.stages.{match[1]}.prompting.{new}' +
                        rest[len(old):])
    raise KeyError(f'No mmwris key for the released PCNet key "{key}".')


def convert_pcnet_state_dict(state_dict: Dict[str, torch.Tensor]
                             ) -> Dict[str, torch.Tensor]:
    """Rename a released PCNet state dict (``checkpoint['model']``) to the
    keys of the PCNet paper config (tensors shared)."""
    if not any(key.startswith(MARKERS) for key in state_dict):
        raise ValueError('Not a released PCNet checkpoint: no '
                         f'{MARKERS} keys.')
    converted = {}
    for key, value in state_dict.items():
        new_key = convert_key(key)
        if new_key is None:
            continue
        if new_key in converted:
            raise KeyError(f'Two released keys map to "{new_key}".')
        converted[new_key] = value
    return converted


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released PCNet checkpoint (.pth)')
    parser.add_argument('dst', help='output mmwris checkpoint')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    state_dict, _ = read_state_dict(args.src, what='released PCNet')
    converted = convert_pcnet_state_dict(state_dict)
    buffer = io.BytesIO()
    torch.save(
        dict(state_dict=converted,
             meta=dict(source=SOURCE, commit=COMMIT,
                       converted_from=osp.basename(args.src))), buffer)
    atomic_write_bytes(args.dst, buffer.getvalue())
    print(f'PCNet: {len(state_dict)} keys -> {len(converted)} keys, '
          f'written to {args.dst}')


if __name__ == '__main__':
    main()
