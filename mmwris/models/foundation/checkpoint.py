"""The one loader of foundation-model weights (CLIP, SAM, ...).

Weights come only from local files. A file may hold a plain state dict, a
checkpoint dict wrapping it in ``'state_dict'`` or ``'model'``, a DDP state
dict (``module.`` prefixes) or, where the caller allows it, a TorchScript
archive (OpenAI's CLIP files). Loading is strict: any missing, unexpected
or wrongly shaped key is an error that names the file and the keys.
"""
import os.path as osp
import warnings
from typing import Dict, Iterable, List, Tuple

import torch
import torch.nn as nn
from torch import Tensor

WRAPPER_KEYS = ('state_dict', 'model')
DDP_PREFIX = 'module.'


def list_keys(keys: List[str], limit: int = 10) -> str:
    """``'N: [k1, k2, ... (M more)]'`` for an error message."""
    shown = ', '.join(keys[:limit])
    more = f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''
    return f'{len(keys)}: [{shown}{more}]'


def read_state_dict(path: str,
                    what: str = 'model',
                    allow_torchscript: bool = False
                    ) -> Tuple[Dict[str, Tensor], bool]:
    """Read a state dict from a local file.

    ``torch.load`` runs with ``weights_only=True``; TorchScript archives
    (``allow_torchscript``) can only be read with ``torch.jit.load``, which
    executes no pickled Python but deserialises a TorchScript program:
    read only files you trust.

    Args:
        path (str): Local file.
        what (str): What the weights are, for messages (``'CLIP'``).
        allow_torchscript (bool): Fall back to ``torch.jit.load``.

    Returns:
        tuple: The state dict (wrappers and ``module.`` prefixes removed)
        and whether the file was a TorchScript archive.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{what} weights file "{path}" does not exist (mmwris never '
            'downloads weights: give the path of a local file).')
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                'ignore', message='.*TorchScript archive.*')
            checkpoint = torch.load(
                path, map_location='cpu', weights_only=True)
    except Exception as load_error:
        if not allow_torchscript:
            raise RuntimeError(f'Cannot read {what} weights from "{path}": '
                               f'{load_error}') from load_error
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', category=FutureWarning)
                checkpoint = torch.jit.load(path, map_location='cpu')
        except Exception:
            raise RuntimeError(f'Cannot read {what} weights from "{path}": '
                               f'{load_error}') from load_error
    scripted = isinstance(checkpoint, torch.jit.ScriptModule)
    if scripted:
        checkpoint = checkpoint.state_dict()
    if isinstance(checkpoint, dict):
        for key in WRAPPER_KEYS:
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict):
        raise TypeError(f'"{path}" holds a {type(checkpoint).__name__}, not '
                        f'a {what} state dict.')
    state_dict = {}
    for key, value in checkpoint.items():
        if key.startswith(DDP_PREFIX):
            key = key[len(DDP_PREFIX):]
        state_dict[key] = value
    return state_dict, scripted


def load_weights_strict(model: nn.Module,
                        path: str,
                        what: str = 'model',
                        allow_torchscript: bool = False,
                        drop_keys: Iterable[str] = (),
                        optional_suffixes: Tuple[str, ...] = ()) -> bool:
    """Load ``path`` into ``model`` strictly, explaining any mismatch.

    Non-persistent buffers that a file may store (TorchScript CLIP's
    ``attn_mask``) are ignored.

    Args:
        model (nn.Module): The built architecture.
        path (str): Local weights file (see :func:`read_state_dict`).
        what (str): What the weights are, for messages.
        allow_torchscript (bool): Accept TorchScript archives.
        drop_keys (Iterable[str]): File keys that are not parameters.
        optional_suffixes (tuple[str]): Model keys that may be absent
            (``'num_batches_tracked'``).

    Returns:
        bool: Whether the file was a TorchScript archive.

    Raises:
        RuntimeError: Naming the file and listing the missing, unexpected
            and wrongly shaped keys (the first 10 of each, with counts).
    """
    state_dict, scripted = read_state_dict(path, what, allow_torchscript)
    for key in drop_keys:
        state_dict.pop(key, None)
    own = model.state_dict()
    for name, _ in model.named_buffers():
        if name not in own:
            state_dict.pop(name, None)
    missing = [
        k for k in own
        if k not in state_dict and not (optional_suffixes
                                        and k.endswith(optional_suffixes))
    ]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f'{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}'
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        raise RuntimeError(
            f'The {what} weights in "{path}" do not match the architecture '
            f'({type(model).__name__}). Missing keys {list_keys(missing)}; '
            f'unexpected keys {list_keys(unexpected)}; shape mismatches '
            f'(file vs model) {list_keys(mismatched)}.')
    model.load_state_dict(state_dict, strict=False)
    return scripted
