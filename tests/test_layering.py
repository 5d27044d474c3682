"""The package layering: models depend on no data or tool package, and the
foundation models (CLIP, SAM) and their weight loading live in one place."""
import ast
import glob
import os.path as osp

from conftest import REPO

PACKAGE = osp.join(REPO, 'mmwris')
# What mmwris.models must never import (directly or relatively).
NOT_FOR_MODELS = ('datasets', 'phrases', 'proposals', 'pseudo_labels',
                  'evaluation')


def imported_modules(path: str):
    """Absolute names of the mmwris modules ``path`` imports."""
    tree = ast.parse(open(path).read(), filename=path)
    package = osp.relpath(osp.dirname(path), REPO).replace(osp.sep, '.')
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split('.')
                base = parts[:len(parts) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ''
            yield name
            for alias in node.names:
                yield f'{name}.{alias.name}'


def python_files(folder: str):
    return sorted(glob.glob(osp.join(folder, '**', '*.py'), recursive=True))


def test_imported_modules_resolves_relative_imports(tmp_path):
    """The scanner itself: a relative import is resolved to its package."""
    names = list(imported_modules(
        osp.join(PACKAGE, 'models', 'foundation', 'clip_scorer.py')))
    assert 'mmwris.models.foundation.clip' in names


def test_models_import_no_data_or_tool_package():
    offenders = []
    for path in python_files(osp.join(PACKAGE, 'models')):
        for name in imported_modules(path):
            parts = name.split('.')
            if parts[0] == 'mmwris' and len(parts) > 1 \
                    and parts[1] in NOT_FOR_MODELS:
                offenders.append(f'{osp.relpath(path, REPO)} imports {name}')
    assert not offenders, '\n'.join(offenders)


def test_weights_are_read_in_one_place():
    """Only mmwris/models/foundation/checkpoint.py reads weight files, and
    only mmwris/models/foundation builds CLIP or SAM architectures."""
    loader = osp.join(PACKAGE, 'models', 'foundation', 'checkpoint.py')
    foundation = osp.join(PACKAGE, 'models', 'foundation')
    files = python_files(PACKAGE) + python_files(osp.join(REPO, 'tools'))
    readers, builders = [], []
    for path in files:
        tree = ast.parse(open(path).read(), filename=path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            call = ast.unparse(node.func)
            if call in ('torch.load', 'torch.jit.load') and path != loader:
                readers.append(f'{osp.relpath(path, REPO)}:{node.lineno}')
            if (call.endswith('create_model') or 'sam_model_registry' in call
                    or call in ('Sam', 'ImageEncoderViT')) \
                    and not path.startswith(foundation):
                builders.append(f'{osp.relpath(path, REPO)}:{node.lineno}')
    assert not readers, readers
    assert not builders, builders


def test_configs_compose_pipelines_by_name():
    """No config splices a pipeline by index (``train_pipeline[:2] + ...``):
    pipelines are composed from named pieces."""
    spliced = []
    for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                          recursive=True):
        tree = ast.parse(open(path).read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and 'pipeline' in \
                    ast.unparse(node.value) and isinstance(
                        node.slice, (ast.Slice, ast.Constant)):
                spliced.append(f'{osp.relpath(path, REPO)}:{node.lineno}')
    assert not spliced, spliced
