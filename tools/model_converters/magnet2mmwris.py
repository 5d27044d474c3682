"""Convert a released MagNet checkpoint (yxchng/mask-grounding) to mmwris.

The released ``test.py`` loads ``torch.load(path)['model']`` (no
``module.`` prefix) into its ``WrapperModel``; the keys map to
``MagNetSegmentor`` (``configs/magnet/magnet_swin-b_*``):

* ``image_model.patch_embed.proj`` -> ``image_encoder.patch_embed.projection``;
  ``image_model.layers.i.blocks.j.{attn, mlp.fc1, mlp.fc2}`` ->
  ``image_encoder.stages.i.blocks.j.{attn.w_msa, ffn.layers.0.0,
  ffn.layers.1}`` (mmseg's Swin); ``layers.i.downsample.{reduction, norm}``
  are re-ordered for mmseg's unfold-based patch merging (as mmseg's
  ``swin2mmseg``);
* ``image_model.layers.i.{fusion, res_gate, pyramids, fusions, mixer}`` ->
  ``image_fusions.i.{pwam, gate, pyramids, branch_pwams, mixer}``;
* ``language_model.{embeddings, encoder}`` -> ``text_encoder.*``;
  ``language_model.{pwams, res_gates}.i`` -> ``text_fusions.i.{pwam,
  gate}``;
* inside a PWAM: ``vis_project`` -> ``vis_proj``,
  ``image_lang_att.{f_query, f_key, f_value, W}`` -> ``{query, key, value,
  out}``, ``project_mm`` -> ``mm_proj`` (1x1 ``Conv1d`` stay ``Conv1d``);
* ``classifier.pixel_decoder.transformer.{level_embed, encoder.layers}``
  -> ``decode_head.pixel_decoder.{level_embed, encoder_layers}``, the other
  ``classifier.pixel_decoder.*`` / ``classifier.predictor.*`` ->
  ``decode_head.{pixel_decoder, predictor}.*``;
* dropped (stored but never used by the released forward pass):
  ``image_model.norm0..3``, ``language_model.norms.*``,
  ``language_model.pooler.*`` (absent with ``--ddp_trained_weights``) and
  ``lang_proj.*``.

Usage::

    python tools/model_converters/magnet2mmwris.py RELEASED.pth OUT.pth
"""
import argparse
import io
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import torch

from mmwris.models.foundation.checkpoint import read_state_dict
from mmwris.utils import atomic_write_bytes

SOURCE = 'yxchng/mask-grounding'
COMMIT = '2debc7ed18ed5b77f9863340f014895b5d8186ab'

DROPPED = (re.compile(r'image_model\.norm\d+\.'),
           re.compile(r'language_model\.(norms|pooler)\.'),
           re.compile(r'lang_proj\.'))
PWAM_PARTS = (('vis_project.', 'vis_proj.'),
              ('image_lang_att.f_query.', 'query.'),
              ('image_lang_att.f_key.', 'key.'),
              ('image_lang_att.f_value.', 'value.'),
              ('image_lang_att.W.', 'out.'), ('project_mm.', 'mm_proj.'))
SWIN_BLOCK_PARTS = (('attn.', 'attn.w_msa.'), ('mlp.fc1.', 'ffn.layers.0.0.'),
                    ('mlp.fc2.', 'ffn.layers.1.'), ('norm1.', 'norm1.'),
                    ('norm2.', 'norm2.'))
STAGE_PARTS = (('fusion.', 'pwam.'), ('res_gate.', 'gate.'),
               ('pyramids.', 'pyramids.'), ('fusions.', 'branch_pwams.'),
               ('mixer.', 'mixer.'))
PREFIXES = (
    ('image_model.patch_embed.proj.', 'image_encoder.patch_embed.projection.'),
    ('image_model.patch_embed.norm.', 'image_encoder.patch_embed.norm.'),
    ('language_model.embeddings.', 'text_encoder.embeddings.'),
    ('language_model.encoder.', 'text_encoder.encoder.'),
    ('classifier.pixel_decoder.transformer.level_embed',
     'decode_head.pixel_decoder.level_embed'),
    ('classifier.pixel_decoder.transformer.encoder.layers.',
     'decode_head.pixel_decoder.encoder_layers.'),
    ('classifier.pixel_decoder.', 'decode_head.pixel_decoder.'),
    ('classifier.predictor.', 'decode_head.predictor.'),
)


def _replace_prefix(key: str, parts) -> Optional[str]:
    for old, new in parts:
        if key.startswith(old):
            return new + key[len(old):]
    return None


def _pwam_key(rest: str) -> str:
    """``rest`` of a released PWAM key -> ours (``0.weight`` kept)."""
    new = _replace_prefix(rest, PWAM_PARTS)
    if new is None:
        raise KeyError(rest)
    return new


def is_dropped(key: str) -> bool:
    return any(pattern.match(key) for pattern in DROPPED)


def convert_key(key: str) -> Optional[str]:
    """Our key for a released one (None: dropped). Raises KeyError for
    keys the released ``WrapperModel`` does not have."""
    if is_dropped(key):
        return None
    match = re.match(r'image_model\.layers\.(\d+)\.(.*)$', key)
    if match:
        stage, rest = match.groups()
        block = re.match(r'blocks\.(\d+)\.(.*)$', rest)
        if block:
            new = _replace_prefix(block[2], SWIN_BLOCK_PARTS)
            if new is not None:
                return (f'image_encoder.stages.{stage}.blocks.{block[1]}.'
                        + new)
        elif rest.startswith('downsample.'):
            return f'image_encoder.stages.{stage}.{rest}'
        else:
            for old, new in STAGE_PARTS:
                if rest.startswith(old):
                    rest = rest[len(old):]
                    if old == 'fusion.':
                        rest = _pwam_key(rest)
                    elif old == 'fusions.':
                        index, tail = rest.split('.', 1)
                        rest = f'{index}.{_pwam_key(tail)}'
                    return f'image_fusions.{stage}.{new}{rest}'
    match = re.match(r'language_model\.(pwams|res_gates)\.(\d+)\.(.*)$', key)
    if match:
        kind, index, rest = match.groups()
        if kind == 'pwams':
            return f'text_fusions.{index}.pwam.{_pwam_key(rest)}'
        return f'text_fusions.{index}.gate.{rest}'
    new = _replace_prefix(key, PREFIXES)
    if new is not None:
        return new
    raise KeyError(f'No mmwris key for the released MagNet key "{key}".')


def _unfold_reduction_order(weight: torch.Tensor) -> torch.Tensor:
    """Patch-merging ``Linear(4C -> 2C)``: torch's ``cat(x0, x1, x2, x3)``
    channel order -> mmseg's ``nn.Unfold`` order."""
    out_channels, in_channels = weight.shape
    weight = weight.reshape(out_channels, 4, in_channels // 4)
    return weight[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(
        out_channels, in_channels)


def _unfold_norm_order(vector: torch.Tensor) -> torch.Tensor:
    channels = vector.shape[0]
    vector = vector.reshape(4, channels // 4)
    return vector[[0, 2, 1, 3], :].transpose(0, 1).reshape(channels)


def convert_value(new_key: str, value: torch.Tensor) -> torch.Tensor:
    """Re-order a tensor for our module (tensors on the meta
    device stay there)."""
    if '.downsample.reduction.' in new_key:
        return _unfold_reduction_order(value)
    if '.downsample.norm.' in new_key:
        return _unfold_norm_order(value)
    return value


def convert_magnet_state_dict(
        state_dict: Dict[str, torch.Tensor]
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Rename a released MagNet state dict to mmwris keys.

    Args:
        state_dict (dict): ``checkpoint['model']`` of the released code.

    Returns:
        tuple[dict, list[str]]: The state dict for ``MagNetSegmentor``
        (strict loading) and the released keys that were dropped.
    """
    converted, dropped = {}, []
    for key, value in state_dict.items():
        new_key = convert_key(key)
        if new_key is None:
            dropped.append(key)
            continue
        if new_key in converted:
            raise KeyError(f'Two released keys map to "{new_key}".')
        converted[new_key] = convert_value(new_key, value)
    return converted, dropped


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint for mmwris')
    return parser.parse_args()


def main():
    args = parse_args()
    state_dict, _ = read_state_dict(args.src, 'released MagNet')
    converted, dropped = convert_magnet_state_dict(state_dict)
    buffer = io.BytesIO()
    torch.save(dict(state_dict=converted,
                    meta=dict(source=SOURCE, commit=COMMIT,
                              converted_from=osp.basename(args.src),
                              dropped_keys=dropped)), buffer)
    atomic_write_bytes(args.dst, buffer.getvalue())
    print(f'{len(converted)} keys written to {args.dst} ({len(dropped)} '
          'unused released keys dropped).')


if __name__ == '__main__':
    main()
