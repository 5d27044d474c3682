"""Refactors keep behaviour: seeded toy runs give the recorded numbers and
every model keeps its recorded state-dict layout (see golden_runs.py)."""
import json
import math
import os.path as osp

import pytest

from golden_runs import (CONFIGS, GOLDEN, LAYOUT_CONFIGS, make_data,
                         run_config, state_dict_layout)

with open(GOLDEN) as f:
    RECORDED = json.load(f)


@pytest.fixture(scope='module')
def golden_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('golden')
    make_data(str(root))
    return str(root)


def close(a: float, b: float, rtol: float = 2e-4, atol: float = 1e-5):
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_seeded_run_matches_recording(name, golden_root):
    torch = pytest.importorskip('torch')
    torch.set_num_threads(1)
    result = run_config(name, golden_root)
    recorded = RECORDED['runs'][name]
    assert len(result['losses']) == len(recorded['losses'])
    for step, (got, want) in enumerate(zip(result['losses'],
                                           recorded['losses'])):
        assert sorted(got) == sorted(want), (name, step)
        for key in want:
            assert close(got[key], want[key]), (name, step, key, got[key],
                                                want[key])
    for got, want in zip(result['predictions'], recorded['predictions']):
        assert got['sent_id'] == want['sent_id']
        assert sorted(got) == sorted(want), name
        assert close(got['logits_sum'], want['logits_sum'], rtol=1e-3)
        assert close(got['logits_max'], want['logits_max'], rtol=1e-3)
        for key in ('mask_area', 'proposal_area'):
            if key in want:
                # a few pixels may sit exactly on the threshold
                assert abs(got[key] - want[key]) <= max(
                    3, 0.002 * want[key]), (name, key)


@pytest.mark.parametrize('name', sorted(dict(CONFIGS, **LAYOUT_CONFIGS)))
def test_state_dict_layout_unchanged(name):
    """Checkpoints trained before the refactor load without conversion."""
    path = dict(CONFIGS, **LAYOUT_CONFIGS)[name]
    assert osp.isfile(osp.join(osp.dirname(GOLDEN), '..', '..', path))
    assert state_dict_layout(path) == RECORDED['layouts'][name]
