"""Common interface of the phrase decomposers."""
from abc import ABCMeta, abstractmethod
from typing import List


class BasePhraseDecomposer(metaclass=ABCMeta):
    """Split a referring expression into short target-related phrases.

    PCNet (NeurIPS'24) feeds the phrases of an expression as progressive
    cues: "woman in white shirt looking down at laptop" -> ["a woman", "the
    woman in white shirt", "the woman looking down at the laptop"].

    Args:
        max_phrases (int): At most this many phrases per expression.
    """

    def __init__(self, max_phrases: int = 5) -> None:
        if int(max_phrases) < 1:
            raise ValueError(f'max_phrases must be >= 1, got {max_phrases}.')
        self.max_phrases = int(max_phrases)

    @abstractmethod
    def decompose(self, sentence: str) -> List[str]:
        """Up to ``max_phrases`` phrases of ``sentence``; ``[]`` when none
        could be derived (the caller then falls back to the sentence)."""
