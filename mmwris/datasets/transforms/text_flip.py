import re

from mmseg.datasets.transforms import RandomFlip

from mmwris.registry import TRANSFORMS

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
    ``RandomFlip``; ``text`` and ``neg_texts`` get "left"/"right" swapped.
    Off unless added to a pipeline.
    """

    def __init__(self, prob: float = 0.5, **kwargs) -> None:
        super().__init__(prob=prob, direction='horizontal', **kwargs)

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        if 'text' in results:
            results['text'] = swap_left_right(results['text'])
        if 'neg_texts' in results:
            results['neg_texts'] = [
                swap_left_right(t) for t in results['neg_texts']]
