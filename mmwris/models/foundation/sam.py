"""Segment Anything (SAM) models built from local weights only.

The architectures are built from ``segment_anything.modeling`` classes with
the settings below; the official ``vit_b``/``vit_l``/``vit_h`` settings give
the same state-dict keys as ``segment_anything.sam_model_registry``, so the
released checkpoints (``sam_vit_b_01ec64.pth``...) load strictly.
``vit_tiny`` is a ~91k-parameter model for tests and CPU smoke runs;
``vit_toy`` the stand-in pretrained on the toy mask corpus (docs/toy_sam.md).
"""
import copy
from functools import partial
from typing import Dict, Union

import torch.nn as nn

from .checkpoint import load_weights_strict

ArchType = Union[str, dict]

# Settings shared by every architecture unless overridden.
_DEFAULTS = dict(
    image_size=1024,
    patch_size=16,
    window_size=14,
    prompt_embed_dim=256,
    mask_in_chans=16,
    decoder_depth=2,
    decoder_mlp_dim=2048,
    decoder_num_heads=8,
    iou_head_hidden_dim=256,
    pixel_mean=(123.675, 116.28, 103.53),
    pixel_std=(58.395, 57.12, 57.375),
)

SAM_ARCHS: Dict[str, dict] = {
    'vit_b': dict(encoder_embed_dim=768, encoder_depth=12,
                  encoder_num_heads=12,
                  encoder_global_attn_indexes=(2, 5, 8, 11)),
    'vit_l': dict(encoder_embed_dim=1024, encoder_depth=24,
                  encoder_num_heads=16,
                  encoder_global_attn_indexes=(5, 11, 17, 23)),
    'vit_h': dict(encoder_embed_dim=1280, encoder_depth=32,
                  encoder_num_heads=16,
                  encoder_global_attn_indexes=(7, 15, 23, 31)),
    'vit_tiny': dict(encoder_embed_dim=32, encoder_depth=1,
                     encoder_num_heads=2, encoder_global_attn_indexes=(),
                     image_size=128, window_size=4, prompt_embed_dim=32,
                     mask_in_chans=4, decoder_mlp_dim=64,
                     decoder_num_heads=2, iou_head_hidden_dim=32),
    # The toy-world stand-in (configs/pretrain/sam-tiny_*): 8-pixel patches
    # give 64 x 64 low-res masks for 128-pixel inputs.
    'vit_toy': dict(encoder_embed_dim=64, encoder_depth=2,
                    encoder_num_heads=2, encoder_global_attn_indexes=(1, ),
                    image_size=128, patch_size=8, window_size=8,
                    prompt_embed_dim=64, mask_in_chans=8, decoder_mlp_dim=256,
                    decoder_num_heads=2, iou_head_hidden_dim=64),
}


def sam_settings(arch: ArchType) -> dict:
    """The full settings of ``arch`` (a name of :data:`SAM_ARCHS` or a dict
    of settings; a dict may start from a name with ``base='vit_b'``)."""
    if isinstance(arch, str):
        if arch not in SAM_ARCHS:
            raise KeyError(f'Unknown SAM architecture "{arch}"; known: '
                           f'{sorted(SAM_ARCHS)} (or a dict of settings).')
        return dict(_DEFAULTS, **SAM_ARCHS[arch])
    if not isinstance(arch, dict):
        raise TypeError('arch must be a SAM architecture name or a dict of '
                        f'settings, not {type(arch).__name__}.')
    arch = copy.deepcopy(dict(arch))
    base = sam_settings(arch.pop('base')) if 'base' in arch else _DEFAULTS
    unknown = sorted(set(arch) - set(_DEFAULTS) - set(SAM_ARCHS['vit_b']))
    if unknown:
        raise KeyError(f'Unknown SAM settings {unknown}; known: '
                       f'{sorted(set(_DEFAULTS) | set(SAM_ARCHS["vit_b"]))}')
    settings = dict(base, **arch)
    missing = [k for k in SAM_ARCHS['vit_b'] if k not in settings]
    if missing:
        raise KeyError(f'SAM settings {missing} are missing.')
    return settings


def build_sam_model(arch: ArchType) -> nn.Module:
    """Build a randomly initialised SAM (``segment_anything.modeling.Sam``)
    in eval mode on CPU."""
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder,
                                           PromptEncoder, Sam,
                                           TwoWayTransformer)

    s = sam_settings(arch)
    embedding_size = s['image_size'] // s['patch_size']
    model = Sam(
        image_encoder=ImageEncoderViT(
            depth=s['encoder_depth'],
            embed_dim=s['encoder_embed_dim'],
            img_size=s['image_size'],
            mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_heads=s['encoder_num_heads'],
            patch_size=s['patch_size'],
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(s['encoder_global_attn_indexes']),
            window_size=s['window_size'],
            out_chans=s['prompt_embed_dim']),
        prompt_encoder=PromptEncoder(
            embed_dim=s['prompt_embed_dim'],
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(s['image_size'], s['image_size']),
            mask_in_chans=s['mask_in_chans']),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=s['decoder_depth'],
                embedding_dim=s['prompt_embed_dim'],
                mlp_dim=s['decoder_mlp_dim'],
                num_heads=s['decoder_num_heads']),
            transformer_dim=s['prompt_embed_dim'],
            iou_head_depth=3,
            iou_head_hidden_dim=s['iou_head_hidden_dim']),
        pixel_mean=list(s['pixel_mean']),
        pixel_std=list(s['pixel_std']))
    return model.eval()


def load_sam_weights(model: nn.Module, checkpoint: str) -> None:
    """Load a local SAM state dict strictly (see
    :func:`load_weights_strict`; the official files are plain state dicts).

    Raises:
        FileNotFoundError: The file does not exist.
        RuntimeError: Naming the file and listing the missing, unexpected
            and wrongly shaped keys (e.g. ``vit_b`` weights for ``vit_l``).
    """
    load_weights_strict(model, checkpoint, 'SAM')


def build_sam(arch: ArchType, checkpoint: str) -> nn.Module:
    """Build SAM ``arch`` and load ``checkpoint`` (a required local file).

    Args:
        arch (str | dict): ``'vit_b'``, ``'vit_l'``, ``'vit_h'`` (the
            official architectures), ``'vit_tiny'`` or a dict of settings
            (see :data:`SAM_ARCHS`).
        checkpoint (str): Local weights file, loaded strictly.

    Returns:
        nn.Module: The SAM model in eval mode on CPU.
    """
    if not checkpoint:
        raise ValueError('A SAM checkpoint (local file) is required: mmwris '
                         'never uses random or downloaded SAM weights.')
    model = build_sam_model(arch)
    load_sam_weights(model, checkpoint)
    return model
