"""Training-time context of a referring sample, drawn per sample.

The dataset keeps, for every training ref, the other refs of its image
(``other_refs``); these transforms draw from them with the sample's own
generator (:func:`mmwris.datasets.draws.draw_rng`). A transform that needs
the whole dataset (``SampleNegativeTexts`` tops negatives up from other
images) is handed a compact view of it by ``RefCOCODataset`` through
``bind_dataset``.
"""
import warnings
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

    Adds ``neg_texts`` (a list of ``num_negatives`` expressions; fewer only
    in ``'same_image'`` mode). The modes (``n`` = other refs of the image):

    * ``'topped_up'``: one random expression of each of ``min(K, n)``
      distinct random other refs, then random expressions of *other
      images* until there are K.
    * ``'same_image_with_replacement'`` (the released TRIS code,
      ``dataset/ReferDataset.py``): K times a random other ref (with
      replacement), then a random expression of it (duplicates allowed).
      When the image has no other ref: random refs of the whole split
      (this one included) and a random expression each, rejected when the
      text equals the positive, until there are K. The released code
      stops its walk over the image's refs at the first ref outside the
      split; ``other_refs`` hold only refs of the split, so nothing stops
      here.
    * ``'same_image'``: ``min(K, n)`` distinct other refs, no top-up.

    Every draw uses the sample's generator ``draw_rng(results,
    'negatives')``.

    Args:
        num_negatives (int): K (3 in the released scripts and the TRIS
            paper configs, 6 in the PCNet configs).
        mode (str): ``'topped_up'``, ``'same_image_with_replacement'`` or
            ``'same_image'``.
        top_up (bool, optional): Deprecated: True is ``mode='topped_up'``,
            False ``mode='same_image'``.
    """
    MODES = ('topped_up', 'same_image_with_replacement', 'same_image')
    # Draws before a fallback gives up (the pool may hold only the
    # positive text).
    MAX_TRIES_PER_NEGATIVE = 100

    def __init__(self,
                 num_negatives: int = 3,
                 mode: Optional[str] = None,
                 top_up: Optional[bool] = None) -> None:
        if num_negatives < 0:
            raise ValueError(f'num_negatives must be >= 0, got '
                             f'{num_negatives}.')
        if top_up is not None:
            if mode is not None:
                raise ValueError('Give mode or the deprecated top_up, not '
                                 'both.')
            warnings.warn(
                'SampleNegativeTexts(top_up=...) is deprecated: use '
                "mode='topped_up' (True) or mode='same_image' (False).",
                DeprecationWarning)
            mode = 'topped_up' if top_up else 'same_image'
        mode = mode or 'topped_up'
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got '
                             f'"{mode}".')
        self.num_negatives = num_negatives
        self.mode = mode
        self._pool: Optional[Sequence[Tuple[int, Tuple[str, ...]]]] = None

    @property
    def top_up(self) -> bool:
        """Whether the mode may draw from other refs than the image's."""
        return self.mode != 'same_image'

    def bind_dataset(self, dataset) -> None:
        """Take the ``(image_id, expressions)`` of every training ref."""
        if self.top_up:
            self._pool = dataset.expression_pool()

    def _bound_pool(self) -> Sequence[Tuple[int, Tuple[str, ...]]]:
        if self._pool is None:
            raise RuntimeError(
                f"SampleNegativeTexts(mode='{self.mode}') needs the "
                "dataset's expressions: it is bound by RefCOCODataset; "
                "outside one, use mode='same_image'.")
        return self._pool

    def _from_pool(self, rng, count: int, image_ok=None,
                   text_ok=None) -> List[str]:
        """Up to ``count`` expressions: a random pool ref whose image passes
        ``image_ok``, then a random expression of it that passes
        ``text_ok``; at most ``MAX_TRIES_PER_NEGATIVE * num_negatives``
        refs are drawn."""
        pool = self._bound_pool()
        drawn = []
        for _ in range(self.MAX_TRIES_PER_NEGATIVE * self.num_negatives):
            if len(drawn) >= count:
                break
            image_id, texts = pool[rng.randrange(len(pool))]
            if image_ok is not None and not image_ok(image_id):
                continue
            text = rng.choice(texts)
            if text_ok is None or text_ok(text):
                drawn.append(text)
        return drawn

    def transform(self, results: dict) -> dict:
        rng = draw_rng(results, 'negatives')
        k = self.num_negatives
        others = [[text for _, text in other[F.SENTENCES]]
                  for other in _other_refs(results, type(self).__name__)]
        if self.mode == 'same_image_with_replacement':
            if others:
                negatives = [
                    rng.choice(others[rng.randrange(len(others))])
                    for _ in range(k)
                ]
            else:
                positive = results[F.TEXT]
                negatives = self._from_pool(
                    rng, k, text_ok=lambda text: text != positive)
        else:
            chosen = rng.sample(others, min(k, len(others)))
            negatives = [rng.choice(texts) for texts in chosen]
            if self.mode == 'topped_up' and len(negatives) < k:
                image_id = results[F.IMAGE_ID]
                negatives += self._from_pool(
                    rng, k - len(negatives),
                    image_ok=lambda other: other != image_id)
        results[F.NEG_TEXTS] = negatives
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_negatives={self.num_negatives}, '
                f"mode='{self.mode}')")


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
