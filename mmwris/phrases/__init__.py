"""Decomposition of referring expressions into target-related phrases
(PCNet's progressive cues)."""
from .base import BasePhraseDecomposer
from .cache import (PHRASE_STATUSES, PhraseCache, load_phrase_file,
                    load_phrase_records)
from .llm import (DEFAULT_PROMPT_TEMPLATE, OpenAICompatibleDecomposer,
                  PhraseRequestError, load_prompt_template)
from .parsing import parse_phrases
from .rule_based import RuleBasedDecomposer
from .runner import PhraseDecompositionRunner

__all__ = [
    'BasePhraseDecomposer', 'DEFAULT_PROMPT_TEMPLATE',
    'OpenAICompatibleDecomposer', 'PHRASE_STATUSES', 'PhraseCache',
    'PhraseDecompositionRunner', 'PhraseRequestError',
    'RuleBasedDecomposer', 'load_phrase_file', 'load_phrase_records',
    'load_prompt_template', 'parse_phrases'
]
