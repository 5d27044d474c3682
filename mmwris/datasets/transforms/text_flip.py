import re

from mmseg.datasets.transforms import RandomFlip

from mmwris.registry import TRANSFORMS
from mmwris.structures import fields as F
from ..draws import draw_rng

LEFT_RIGHT = {
    'left': 'right', 'right': 'left',
    'leftmost': 'rightmost', 'rightmost': 'leftmost',
    'lefthand': 'righthand', 'righthand': 'lefthand',
}
_WORD = re.compile(r'\b(' + '|'.join(LEFT_RIGHT) + r')\b', re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """Swap "left" and "right" words (keeping a leading capital)."""

    def swap(match):
        word = match.group(0)
        new = LEFT_RIGHT[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    return _WORD.sub(swap, text)


@TRANSFORMS.register_module()
class RandomFlipWithText(RandomFlip):
    """Horizontal flip that also swaps left/right words in the expressions.

    A plain flip would turn "the dog on the left" into a wrong label. The
    image, ``seg_fields`` and ``gt_bboxes`` are flipped as by mmseg's
    ``RandomFlip``; "left"/"right" are swapped in ``text``, ``neg_texts``,
    PCNet's ``phrases`` and the partner's ``partner_text`` /
    ``partner_phrases`` (also in ``sentence_phrases`` /
    ``partner_sentence_phrases`` for a flip before ``LoadPhrases``; None
    stays None). Off unless added to a pipeline.
    """

    def __init__(self, prob: float = 0.5, **kwargs) -> None:
        super().__init__(prob=prob, direction='horizontal', **kwargs)

    TEXT_KEYS = F.TEXT_KEYS
    TEXT_LIST_KEYS = F.TEXT_LIST_KEYS

    def _flip_on_direction(self, results: dict) -> None:
        flip = draw_rng(results, 'flip').random() < self.prob
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        if flip:
            self._flip(results)

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        for key in self.TEXT_KEYS:
            if results.get(key) is not None:
                results[key] = swap_left_right(results[key])
        for key in self.TEXT_LIST_KEYS:
            if results.get(key) is not None:
                results[key] = [swap_left_right(t) for t in results[key]]
