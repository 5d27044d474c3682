"""PCNet phrases: pad or cut each expression's phrases to K."""
from typing import List, Optional

from mmcv.transforms import BaseTransform

from mmwris.registry import TRANSFORMS


def pad_phrases(phrases: Optional[List[str]], sentence: str,
                num: int) -> List[str]:
    """The first ``num`` phrases, padded with ``sentence`` to ``num``."""
    phrases = list(phrases or [])[:num]
    return phrases + [sentence] * (num - len(phrases))


@TRANSFORMS.register_module()
class LoadPhrases(BaseTransform):
    """Give a sample exactly ``num_phrases`` PCNet phrases.

    ``phrases`` = the first K of ``sentence_phrases`` (set by
    ``RefCOCODataset`` with ``phrase_file``), padded with the full sentence
    ``text`` to K. Likewise ``partner_phrases`` from
    ``partner_sentence_phrases`` and ``partner_text`` when the sample has a
    partner (None when ``partner_text`` is None).

    Args:
        num_phrases (int): K. Defaults to 3.
    """

    def __init__(self, num_phrases: int = 3) -> None:
        if num_phrases < 1:
            raise ValueError(f'num_phrases must be >= 1, got {num_phrases}.')
        self.num_phrases = num_phrases

    def _missing(self, key: str, results: dict) -> KeyError:
        return KeyError(
            f'LoadPhrases: sample sent_id={results.get("sent_id")} '
            f'(ref_id={results.get("ref_id")}) has no "{key}". Set '
            'phrase_file on the dataset (see tools/decompose_phrases.py).')

    def transform(self, results: dict) -> dict:
        if 'sentence_phrases' not in results:
            raise self._missing('sentence_phrases', results)
        results['phrases'] = pad_phrases(results['sentence_phrases'],
                                         results['text'], self.num_phrases)
        if 'partner_text' in results:
            partner = results['partner_text']
            if partner is None:
                results['partner_phrases'] = None
            elif 'partner_sentence_phrases' not in results:
                raise self._missing('partner_sentence_phrases', results)
            else:
                results['partner_phrases'] = pad_phrases(
                    results['partner_sentence_phrases'], partner,
                    self.num_phrases)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_phrases={self.num_phrases})'
