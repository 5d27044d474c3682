"""SampleNegativeTexts: the released TRIS rule (same image, with
replacement, split-wide fallback) and the topped-up rule, hand-computed
with scripted draws."""
import pytest

from mmwris.datasets.transforms import SampleNegativeTexts
from mmwris.datasets.draws import DRAW_KEY
from mmwris.datasets.transforms import context
from mmwris.structures import fields as F


class ScriptedRng:
    """Returns scripted indices; checks the range of every draw."""

    def __init__(self, *draws):
        self.draws = list(draws)  # (method, n, index)

    def _next(self, method, n):
        want_method, want_n, index = self.draws.pop(0)
        assert (method, n) == (want_method, want_n)
        return index

    def randrange(self, n):
        return self._next('randrange', n)

    def choice(self, seq):
        return seq[self._next('choice', len(seq))]

    def sample(self, seq, k):
        picked = [seq[self._next('sample', len(seq))] for _ in range(k)]
        assert len({id(p) for p in picked}) == k
        return picked


class Pool:
    def __init__(self, pool):
        self.pool = pool

    def expression_pool(self):
        return self.pool


def results(others, text='the dog', image_id=1):
    return {
        F.TEXT: text, F.IMAGE_ID: image_id,
        F.OTHER_REFS: [
            {F.SENTENCES: [(i * 10 + j, t) for j, t in enumerate(sents)]}
            for i, sents in enumerate(others)
        ]
    }


POOL = [(1, ('the dog', 'a brown dog')), (1, ('the cat', )),
        (2, ('red car', 'the car'))]


def run(transform, res, *draws, monkeypatch):
    rng = ScriptedRng(*draws)
    monkeypatch.setattr(context, 'draw_rng', lambda r, purpose: rng)
    out = transform(res)[F.NEG_TEXTS]
    assert not rng.draws, 'unused scripted draws'
    return out


def test_released_mode_picks_refs_with_replacement(monkeypatch):
    t = SampleNegativeTexts(num_negatives=3,
                            mode='same_image_with_replacement')
    t.bind_dataset(Pool(POOL))
    res = results([['left cat', 'cat'], ['chair']])
    # K times: a ref (with replacement), then one of its sentences
    got = run(t, res, ('randrange', 2, 0), ('choice', 2, 1),
              ('randrange', 2, 0), ('choice', 2, 1),
              ('randrange', 2, 1), ('choice', 1, 0), monkeypatch=monkeypatch)
    assert got == ['cat', 'cat', 'chair']


def test_released_fallback_draws_the_split_and_rejects_the_positive(
        monkeypatch):
    t = SampleNegativeTexts(num_negatives=3,
                            mode='same_image_with_replacement')
    t.bind_dataset(Pool(POOL))
    # no other ref: random refs of the whole split, the same image (and
    # the same ref) allowed, the positive text rejected
    got = run(t, results([]), ('randrange', 3, 0), ('choice', 2, 0),
              ('randrange', 3, 0), ('choice', 2, 1), ('randrange', 3, 1),
              ('choice', 1, 0), ('randrange', 3, 2), ('choice', 2, 0),
              monkeypatch=monkeypatch)
    assert got == ['a brown dog', 'the cat', 'red car']


def test_topped_up_mode_is_unchanged(monkeypatch):
    t = SampleNegativeTexts(num_negatives=3)
    assert t.mode == 'topped_up'
    t.bind_dataset(Pool(POOL))
    # one distinct other ref, then other images only (image 1 skipped
    # without drawing a sentence)
    got = run(t, results([['left cat', 'cat']]), ('sample', 1, 0),
              ('choice', 2, 0), ('randrange', 3, 1), ('randrange', 3, 2),
              ('choice', 2, 1), ('randrange', 3, 2), ('choice', 2, 0),
              monkeypatch=monkeypatch)
    assert got == ['left cat', 'the car', 'red car']


def test_same_image_mode_and_deprecated_top_up(monkeypatch):
    t = SampleNegativeTexts(num_negatives=3, mode='same_image')
    got = run(t, results([['left cat'], ['chair']]), ('sample', 2, 1),
              ('sample', 2, 0), ('choice', 1, 0), ('choice', 1, 0),
              monkeypatch=monkeypatch)
    assert got == ['chair', 'left cat']
    with pytest.warns(DeprecationWarning, match='top_up'):
        assert SampleNegativeTexts(top_up=False).mode == 'same_image'
    with pytest.warns(DeprecationWarning):
        assert SampleNegativeTexts(top_up=True).mode == 'topped_up'
    with pytest.raises(ValueError, match='not both'):
        SampleNegativeTexts(mode='topped_up', top_up=True)
    with pytest.raises(ValueError, match='mode'):
        SampleNegativeTexts(mode='with_replacement')


def test_released_mode_with_real_keyed_draws():
    """Duplicates are kept; draws repeat for one key; unbound fallback
    fails clearly; a pool of only the positive gives up."""
    t = SampleNegativeTexts(num_negatives=4,
                            mode='same_image_with_replacement')
    res = results([['only one']])
    res[DRAW_KEY] = (0, 7)
    assert t(dict(res))[F.NEG_TEXTS] == ['only one'] * 4
    with pytest.raises(RuntimeError, match='bound'):
        t(dict(results([]), **{DRAW_KEY: (0, 7)}))
    t.bind_dataset(Pool([(1, ('the dog', ))]))
    assert t(results([]))[F.NEG_TEXTS] == []
    t.bind_dataset(Pool(POOL))
    first = t(dict(results([]), **{DRAW_KEY: (0, 3)}))[F.NEG_TEXTS]
    again = t(dict(results([]), **{DRAW_KEY: (0, 3)}))[F.NEG_TEXTS]
    assert first == again and len(first) == 4 and 'the dog' not in first
    assert "mode='same_image_with_replacement'" in repr(t)
