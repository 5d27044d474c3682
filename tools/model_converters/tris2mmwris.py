"""Convert a released TRIS checkpoint (fawnliu/TRIS) to mmwris keys.

The released ``train_stage1.py`` saves ``{'model': state_dict, 'optimizer',
'lr_scheduler', 'epoch'}`` without a ``module.`` prefix. Step-1 keys map to
``TRISSegmentor`` with ``TRISHead`` (``configs/tris/tris_clip-r50_*``):

* ``backbone.visual.*`` -> ``image_encoder.visual.*``; the CLIP text tower
  (``backbone.{token_embedding, positional_embedding, transformer, ln_final,
  text_projection}``) -> ``text_encoder.*``;
* ``logit_scale`` -> ``decode_head.logit_scale``, ``vis_project`` ->
  ``decode_head.vis_proj``, ``lan_project`` -> ``decode_head.text_proj``,
  ``attn_fusion.*`` -> ``decode_head.prompting.*`` (``v_proj1/2/3`` ->
  ``query_v/key_v/value_v``, ``t_proj1/2/3`` -> ``query_t/key_t/value_t``,
  ``v_output`` -> ``out_v``, ``t_output.0`` -> ``out_t``);
* dropped: ``backbone.visual.attnpool.*`` (unused by TRIS; our image
  encoder has no attention pool) and ``backbone.logit_scale`` (CLIP's own
  temperature, unused).

Step-2 keys (``train_stage2.py``) map to ``TRISStep2Segmentor`` with
``TRISPixelAttention`` and ``TRISStep2ReleasedHead``
(``configs/tris/tris-step2_clip-r50_*``): the backbone as in step 1;
``attention{k}.{Wq,Wk,Wv,Wm,Ww,Wo,ins_q,ins_w}`` ->
``fusions.stage{k-1}.{w_q,...,ins_q,ins_w}``; ``reduced_c{i}`` ->
``decode_head.reduce_convs.{i-1}``, ``output{i}`` ->
``decode_head.fuse_convs.{i-1}``, ``final_seg{i}`` ->
``decode_head.side_heads.{i-1}``, the PReLU ``relu`` -> ``activate``.

Usage::

    python tools/model_converters/tris2mmwris.py RELEASED.pth OUT.pth
"""
import argparse
import io
import os.path as osp
import re
from typing import Dict, Optional

import torch

from mmwris.models.foundation.checkpoint import read_state_dict
from mmwris.utils import atomic_write_bytes

SOURCE = 'fawnliu/TRIS'
COMMIT = 'c6666b3b89a31504a23f39710e904e1335e23e91'

DROPPED_PREFIXES = ('backbone.visual.attnpool.', )
DROPPED_KEYS = ('backbone.logit_scale', )
TEXT_TOWER = ('token_embedding.', 'positional_embedding', 'transformer.',
              'ln_final.', 'text_projection')
# Released prefix -> ours, longest first (step 1).
STEP1_PREFIXES = (
    ('backbone.visual.', 'image_encoder.visual.'),
    ('vis_project.', 'decode_head.vis_proj.'),
    ('lan_project.', 'decode_head.text_proj.'),
    ('attn_fusion.v_proj1.', 'decode_head.prompting.query_v.'),
    ('attn_fusion.v_proj2.', 'decode_head.prompting.key_v.'),
    ('attn_fusion.v_proj3.', 'decode_head.prompting.value_v.'),
    ('attn_fusion.t_proj1.', 'decode_head.prompting.query_t.'),
    ('attn_fusion.t_proj2.', 'decode_head.prompting.key_t.'),
    ('attn_fusion.t_proj3.', 'decode_head.prompting.value_t.'),
    ('attn_fusion.v_output.', 'decode_head.prompting.out_v.'),
    ('attn_fusion.t_output.0.', 'decode_head.prompting.out_t.'),
)
STEP1_KEYS = {'logit_scale': 'decode_head.logit_scale'}
STEP1_MARKERS = ('attn_fusion.', 'vis_project.', 'lan_project.')
STEP2_MARKERS = ('attention2.', 'reduced_c1.', 'final_seg1.')
# Released step-2 head modules (1-based index) -> ours (0-based).
STEP2_PATTERNS = (
    (re.compile(r'attention(\d)\.W([a-z])\.'), 'fusions.stage{0}.w_{1}.'),
    (re.compile(r'attention(\d)\.(ins_[qw])\.'), 'fusions.stage{0}.{1}.'),
    (re.compile(r'reduced_c(\d)\.'), 'decode_head.reduce_convs.{0}.'),
    (re.compile(r'output(\d)\.'), 'decode_head.fuse_convs.{0}.'),
    (re.compile(r'final_seg(\d)\.'), 'decode_head.side_heads.{0}.'),
)


def detect_stage(state_dict: Dict[str, torch.Tensor]) -> int:
    """1 or 2, from the head keys of a released checkpoint."""
    if any(key.startswith(STEP2_MARKERS) for key in state_dict):
        return 2
    if any(key.startswith(STEP1_MARKERS) for key in state_dict):
        return 1
    raise ValueError('Not a released TRIS checkpoint: no step-1 '
                     f'({STEP1_MARKERS}) or step-2 ({STEP2_MARKERS}) keys.')


def _is_dropped(key: str) -> bool:
    return key in DROPPED_KEYS or key.startswith(DROPPED_PREFIXES)


def convert_key(key: str, stage: int = 1) -> Optional[str]:
    """Our key for a released one (None: dropped)."""
    if _is_dropped(key):
        return None
    if key.startswith('backbone.') and key[len('backbone.'):].startswith(
            TEXT_TOWER):
        return 'text_encoder.' + key[len('backbone.'):]
    if key.startswith('backbone.visual.'):
        return 'image_encoder.' + key[len('backbone.'):]
    if stage == 1:
        if key in STEP1_KEYS:
            return STEP1_KEYS[key]
        for old, new in STEP1_PREFIXES:
            if key.startswith(old):
                return new + key[len(old):]
    else:
        for pattern, template in STEP2_PATTERNS:
            match = pattern.match(key)
            if match:
                rest = re.sub(r'(^|\.)relu\.', r'\1activate.',
                              key[match.end():])
                return template.format(
                    int(match[1]) - 1, *match.groups()[1:]) + rest
    raise KeyError(f'No mmwris key for the released step-{stage} key '
                   f'"{key}".')


def convert_tris_state_dict(state_dict: Dict[str, torch.Tensor],
                            stage: Optional[int] = None
                            ) -> Dict[str, torch.Tensor]:
    """Rename a released TRIS state dict to mmwris keys (tensors shared).

    Args:
        state_dict (dict): ``checkpoint['model']`` of the released code.
        stage (int, optional): 1 or 2; detected from the keys by default.

    Returns:
        dict: The state dict for the paper config (strict loading).
    """
    stage = stage or detect_stage(state_dict)
    converted = {}
    for key, value in state_dict.items():
        new_key = convert_key(key, stage)
        if new_key is None:
            continue
        if new_key in converted:
            raise KeyError(f'Two released keys map to "{new_key}".')
        converted[new_key] = value
    return converted


def convert_tris_step2_state_dict(state_dict: Dict[str, torch.Tensor]
                                  ) -> Dict[str, torch.Tensor]:
    """Rename a released step-2 TRIS state dict to the keys of the
    step-2 paper config (``TRISStep2ReleasedHead``); tensors shared."""
    return convert_tris_state_dict(state_dict, stage=2)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released TRIS checkpoint (.pth)')
    parser.add_argument('dst', help='output mmwris checkpoint')
    parser.add_argument('--stage', type=int, choices=(1, 2),
                        help='override the detected stage')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    state_dict, _ = read_state_dict(args.src, what='released TRIS')
    stage = args.stage or detect_stage(state_dict)
    converted = convert_tris_state_dict(state_dict, stage)
    buffer = io.BytesIO()
    torch.save(
        dict(
            state_dict=converted,
            meta=dict(
                source=SOURCE, commit=COMMIT, stage=stage,
                converted_from=osp.basename(args.src))), buffer)
    atomic_write_bytes(args.dst, buffer.getvalue())
    print(f'step-{stage} TRIS: {len(state_dict)} keys -> {len(converted)} '
          f'keys, written to {args.dst}')


if __name__ == '__main__':
    main()
