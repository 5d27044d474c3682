"""Training-time context of a referring sample, drawn per sample.

The dataset keeps, for every training ref, the other refs of its image
(``other_refs``); these transforms draw from them with the sample's own
generator (:func:`mmwris.datasets.draws.draw_rng`). A transform that needs
the whole dataset (``SampleNegativeTexts`` tops negatives up from other
images) is handed a compact view of it by ``RefCOCODataset`` through
``bind_dataset``.
"""
from typing import List, Optional, Sequence, Tuple

from mmcv.transforms import BaseTransform

from mmwris.registry import TRANSFORMS
from mmwris.structures import fields as F
from ..draws import draw_rng


def _other_refs(results: dict, transform: str) -> List[dict]:
    if F.OTHER_REFS not in results:
        raise KeyError(
            f'{transform} draws from the other refs of the image, which a '
            'training RefCOCODataset (test_mode=False) provides: use it in '
            'training pipelines only.')
    return results[F.OTHER_REFS]


@TRANSFORMS.register_module()
class SampleNegativeTexts(BaseTransform):
    """TRIS's calibration negatives: expressions of *other* objects.

    One random expression of each of up to ``num_negatives`` random other
    refs of the same image; with ``top_up``, random expressions of other
    images until there are ``num_negatives``. Adds ``neg_texts`` (list).

    Args:
        num_negatives (int): K (6 in the TRIS paper configs, 3 in the
            released scripts).
        top_up (bool): Fill up from other images when the image has fewer
            than K other refs.
    """

    def __init__(self, num_negatives: int = 3, top_up: bool = True) -> None:
        if num_negatives < 0:
            raise ValueError(f'num_negatives must be >= 0, got '
                             f'{num_negatives}.')
        self.num_negatives = num_negatives
        self.top_up = top_up
        self._pool: Optional[Sequence[Tuple[int, Tuple[str, ...]]]] = None

    def bind_dataset(self, dataset) -> None:
        """Take the ``(image_id, expressions)`` of every training ref."""
        if self.top_up:
            self._pool = dataset.expression_pool()

    def transform(self, results: dict) -> dict:
        rng = draw_rng(results, 'negatives')
        k = self.num_negatives
        others = [[text for _, text in other[F.SENTENCES]]
                  for other in _other_refs(results, type(self).__name__)]
        chosen = rng.sample(others, min(k, len(others)))
        negatives = [rng.choice(texts) for texts in chosen]
        if self.top_up and len(negatives) < k:
            if self._pool is None:
                raise RuntimeError(
                    'SampleNegativeTexts(top_up=True) needs the dataset\'s '
                    'expressions: it is bound by RefCOCODataset; outside '
                    'one, set top_up=False.')
            for _ in range(100 * k):
                if len(negatives) >= k:
                    break
                image_id, texts = self._pool[rng.randrange(len(self._pool))]
                if image_id != results[F.IMAGE_ID]:
                    negatives.append(rng.choice(texts))
        results[F.NEG_TEXTS] = negatives
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_negatives={self.num_negatives}, '
                f'top_up={self.top_up})')


@TRANSFORMS.register_module()
class SampleIaDPartner(BaseTransform):
    """PCNet's IaD partner: a random expression of a random other ref of
    the same image.

    Adds ``partner_text``, ``partner_sent_id``, ``partner_ref_id`` (all None
    when the image has no other ref) and, when the dataset has a phrase
    file, ``partner_sentence_phrases`` (``LoadPhrases`` cuts them to K).
    """

    def transform(self, results: dict) -> dict:
        rng = draw_rng(results, 'partner')
        others = _other_refs(results, type(self).__name__)
        with_phrases = F.SENTENCE_PHRASES in results
        if not others:
            results.update({F.PARTNER_TEXT: None, F.PARTNER_SENT_ID: None,
                            F.PARTNER_REF_ID: None})
            if with_phrases:
                results[F.PARTNER_SENTENCE_PHRASES] = None
            return results
        other = rng.choice(others)
        sent_id, text = rng.choice(other[F.SENTENCES])
        results.update({F.PARTNER_TEXT: text, F.PARTNER_SENT_ID: sent_id,
                        F.PARTNER_REF_ID: other[F.REF_ID]})
        if with_phrases:
            results[F.PARTNER_SENTENCE_PHRASES] = list(
                other[F.PHRASES_BY_SENT][sent_id])
        return results
