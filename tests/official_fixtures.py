"""Loader of the official fixtures (outputs of the released code).

The folder comes from ``MMWRIS_OFFICIAL_FIXTURES`` (default
``../shared/fixtures/official``, relative to the repository root) with one
sub-folder per method (``tris/``, see its README). A test module calls
:func:`require` at import: the module is skipped when the method's folder
is missing, and a missing file inside an existing folder fails the test.
"""
import os
import zlib
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = 'MMWRIS_OFFICIAL_FIXTURES'


def fixtures_root() -> Path:
    root = Path(os.environ.get(ENV_VAR, '../shared/fixtures/official'))
    if not root.is_absolute():
        root = REPO_ROOT / root
    return root.resolve()


def require(method: str = 'tris') -> Path:
    """The method's fixture folder; skips the calling module without it."""
    folder = fixtures_root() / method
    if not folder.is_dir():
        pytest.skip(f'no official fixtures at {folder} (set {ENV_VAR})',
                    allow_module_level=True)
    return folder


def fixture_path(name: str, method: str = 'tris') -> Path:
    """The path of one fixture file; fails (not skips) when it is missing."""
    path = fixtures_root() / method / name
    if not path.is_file():
        pytest.fail(f'official fixture file missing: {path}')
    return path


def load(name: str, method: str = 'tris'):
    """``torch.load(weights_only=True)`` of a fixture file."""
    return torch.load(fixture_path(name, method), weights_only=True)


def rebuild_omitted(recipe: dict) -> torch.Tensor:
    """The tensor a state-dict file left out (``omitted_recipe``):
    ``0.1 * sin(arange(n, float64) * 0.7 + crc32(key) % 997)``, row-major,
    float32."""
    shape = list(recipe['shape'])
    numel = 1
    for size in shape:
        numel *= size
    phase = zlib.crc32(recipe['key'].encode('utf-8')) % 997
    values = 0.1 * torch.sin(
        torch.arange(numel, dtype=torch.float64) * 0.7 + phase)
    return values.reshape(shape).float()


def load_state_dict(name: str, method: str = 'tris') -> dict:
    """A fixture state dict (``file['model']``) with its omitted tensor
    rebuilt."""
    data = load(name, method)
    state_dict = dict(data['model'])
    recipe = data.get('omitted_recipe')
    if recipe:
        state_dict[recipe['key']] = rebuild_omitted(recipe)
    return state_dict


def meta_state_dict(name: str, method: str = 'tris') -> dict:
    """A full-size checkpoint layout (``stage*_checkpoint_keys.json``) as
    ``{key: empty tensor on the meta device}`` of the recorded shape and
    dtype."""
    import json
    with open(fixture_path(name, method)) as f:
        layout = json.load(f)
    state_dict = {
        key: torch.empty(spec['shape'], dtype=getattr(torch, spec['dtype']),
                         device='meta')
        for key, spec in layout['keys'].items()
    }
    assert len(state_dict) == layout['num_keys']
    return state_dict


def assert_loads_strictly(model: torch.nn.Module, state_dict: dict) -> None:
    """``state_dict`` has exactly the model's keys, shapes and dtypes and
    loads with ``strict=True`` (``assign`` for meta tensors)."""
    ours = model.state_dict()
    assert set(state_dict) == set(ours), (
        sorted(set(state_dict) ^ set(ours))[:10])
    for key, value in state_dict.items():
        assert value.shape == ours[key].shape, key
        assert value.dtype == ours[key].dtype, key
    model.load_state_dict(state_dict, strict=True, assign=True)


class meta_parameters:
    """Build modules with their parameters and buffers on the meta device
    (no memory, no initialisation cost) while every other tensor stays on
    the CPU (constructors that call ``.item()`` keep working)::

        with meta_parameters():
            model = MODELS.build(cfg)
    """

    def __enter__(self):
        module = torch.nn.Module
        self._saved = module.register_parameter, module.register_buffer
        register_parameter, register_buffer = self._saved

        def parameter(mod, name, param):
            if param is not None and param.device.type != 'meta':
                param = torch.nn.Parameter(param.to('meta'),
                                           requires_grad=param.requires_grad)
            register_parameter(mod, name, param)

        def buffer(mod, name, tensor, persistent=True):
            if tensor is not None:
                tensor = tensor.to('meta')
            register_buffer(mod, name, tensor, persistent=persistent)

        module.register_parameter, module.register_buffer = parameter, buffer
        return self

    def __exit__(self, *exc):
        module = torch.nn.Module
        module.register_parameter, module.register_buffer = self._saved
        return False


def load_tool(relative_path: str):
    """Import a script of the repository (e.g.
    ``tools/model_converters/pcnet2mmwris.py``) as a module."""
    import importlib.util
    path = REPO_ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
