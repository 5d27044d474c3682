"""A deterministic, model-free phrase decomposer."""
import re
from typing import List, Tuple

from mmwris.registry import TASK_UTILS
from .base import BasePhraseDecomposer

DETERMINERS = frozenset((
    'a', 'an', 'the', 'this', 'that', 'these', 'those', 'his', 'her', 'its',
    'their', 'my', 'your', 'our', 'some', 'any'))
# Words opening a relation chunk: prepositions, verbs, relative pronouns.
RELATION_PHRASES = (
    'to the left of', 'to the right of', 'on the left of', 'on the right of',
    'on the left side of', 'on the right side of', 'in front of',
    'in back of', 'on top of', 'at the top of', 'at the bottom of',
    'next to', 'close to', 'closest to', 'nearest to', 'left of',
    'right of', 'across from', 'away from', 'about to', 'in between',
    'between', 'on', 'in', 'inside', 'with', 'without', 'near', 'above',
    'below', 'over', 'under', 'beneath', 'underneath', 'behind', 'beside',
    'by', 'at', 'against', 'along', 'around', 'atop', 'across', 'toward',
    'towards', 'from', 'into', 'onto', 'through', 'among', 'holding',
    'wearing', 'carrying', 'sitting', 'standing', 'looking', 'eating',
    'riding', 'lying', 'laying', 'walking', 'running', 'playing', 'facing',
    'talking', 'using', 'reaching', 'hitting', 'throwing', 'swinging',
    'drinking', 'touching', 'leaning', 'hanging', 'watching', 'pointing',
    'waiting', 'sleeping', 'jumping', 'reading', 'cutting', 'pulling',
    'pushing', 'leading', 'grazing', 'driving', 'kneeling', 'bending',
    'resting', 'crouching', 'smiling', 'laughing', 'holds', 'wears', 'has',
    'having', 'is', 'are', 'being', 'dressed', 'covered', 'filled',
    'topped', 'that', 'which', 'who', 'whose', 'where', 'while')
# As word tuples, longest first: "to the left of" wins over "left of".
RELATION_MARKERS = tuple(sorted(
    (tuple(m.split()) for m in RELATION_PHRASES), key=len, reverse=True))
MARKER_WORDS = frozenset(w for m in RELATION_MARKERS for w in m)
RELATIVE_WORDS = frozenset(('that', 'which', 'who', 'whose', 'where'))
AUXILIARIES = frozenset(('is', 'are', 'was', 'were'))
SUBJECT_PRONOUNS = frozenset(('he', 'she', 'it', 'they', 'this', 'that'))
# A relation chunk opening on one of these refers to the previous object
# ("wearing a bandanna | on her head"): it is merged into that chunk.
BACK_REFERENCES = frozenset((
    'it', 'them', 'him', 'her', 'his', 'its', 'their', 'itself'))
POSITION_WORDS = frozenset((
    'left', 'right', 'leftside', 'rightside', 'leftmost', 'rightmost',
    'top', 'bottom', 'middle', 'center', 'centre', 'front', 'back', 'far',
    'topmost', 'lowest', 'upper', 'lower'))
# "looking down | at the laptop" stays one chunk: particles are no object.
PARTICLES = frozenset(('down', 'up', 'out', 'away', 'back', 'off', 'forward'))
NOT_ATTRIBUTES = frozenset(('and', 'or', 'of', 'very', 'kind', 'sort'))
CONJUNCTIONS = frozenset(('and', 'or', 'but', 'while'))
CLAUSE_BREAKS = frozenset(('.', ',', ';', '!', '?'))


def tokenize(sentence: str) -> List[str]:
    """Lower-cased tokens; "hot - dog" -> "hot-dog"; punctuation split."""
    text = re.sub(r'\s*([-/])\s*', r'\1', sentence.lower())
    text = re.sub(r'([.,;!?])(?=\s|$)', r' \1 ', text)
    return text.split()


def _marker_at(tokens: List[str], i: int) -> int:
    """Length of the relation marker starting at ``tokens[i]`` (0: none)."""
    for marker in RELATION_MARKERS:
        if tuple(tokens[i:i + len(marker)]) == marker:
            return len(marker)
    return 0


def _is_content(token: str) -> bool:
    return token not in DETERMINERS and token not in CLAUSE_BREAKS \
        and token not in PARTICLES


def chunk_clause(tokens: List[str],
                 starts_with_head: bool = True) -> List[List[str]]:
    """Split a clause before each relation marker that follows a content
    word. Inside a relative clause ("that has the number 8 on it") no
    further split is made."""
    chunks, current, content = [], [], False
    i = 0
    while i < len(tokens):
        length = _marker_at(tokens, i)
        relative = (bool(chunks) or not starts_with_head) and any(
            w in RELATIVE_WORDS for w in current)
        if length and content and not relative:
            chunks.append(current)
            current, content = [], False
        if length:
            current.extend(tokens[i:i + length])
            i += length
        else:
            current.append(tokens[i])
            content = content or _is_content(tokens[i])
            i += 1
    if current:
        chunks.append(current)
    return chunks


def _simplify_relation(chunk: List[str]) -> List[str]:
    """"which is above the dog" -> "above the dog"; drop a dangling
    conjunction ("holding a bat and")."""
    words = list(chunk)
    if words and words[0] in RELATIVE_WORDS and len(words) > 1 \
            and words[1] in AUXILIARIES:
        words = words[1:]
    if words and words[0] in AUXILIARIES and len(words) > 1 and (
            _marker_at(words, 1) or words[1].endswith('ing')):
        words = words[1:]
    while words and words[-1] in CONJUNCTIONS:
        words = words[:-1]
    return words


def _later_clause(tokens: List[str]) -> Tuple[List[List[str]], List[str]]:
    """Relation chunks and position attributes of a clause after the first
    (". she is wearing ear rings" -> ["wearing ear rings"])."""
    words = list(tokens)
    if len(words) > 1 and words[0] in SUBJECT_PRONOUNS:
        words = words[1:]
    if len(words) > 1 and words[0] in AUXILIARIES:
        words = words[1:]
    content = [w for w in words if _is_content(w)]
    if content and all(w in POSITION_WORDS for w in content):
        return [], content
    if not words or not _marker_at(words, 0):
        return [], []
    return chunk_clause(words, starts_with_head=False), []


def _article(head: str) -> str:
    if head in ('one', 'ones') or (
            len(head) > 3 and head.endswith('s')
            and not head.endswith(('ss', 'us', 'is'))):
        return 'the'
    return 'an' if head[0] in 'aeiou' else 'a'


@TASK_UTILS.register_module()
class RuleBasedDecomposer(BasePhraseDecomposer):
    """Split an expression at relation words, without any model.

    The expression is cut into clauses at punctuation and each clause
    before relation markers (prepositions such as "on", "next to", "left
    of", "in front of"; verbs such as "holding", "wearing"; relative
    pronouns "that", "which", "who"). The first chunk is the head noun
    phrase: head noun ``h`` = its last word (a trailing position word such
    as "leftside" counts as an attribute), attributes ``a_i`` = its other
    non-article words. The phrases are, in order::

        "a h", "the a_1 h", ..., "the a_n h", "the h r_1", ..., "the h r_m"

    for relation chunks ``r_j`` (a head chunk with "of" - "the neck of a
    person" - is kept whole instead of its attributes). Duplicates are
    dropped and the list is cut at ``max_phrases``; an expression without
    a head noun gives ``[]``.

    Example: "the yellow shape above the blue one" -> ["a shape", "the
    yellow shape", "the shape above the blue one"].
    """

    def decompose(self, sentence: str) -> List[str]:
        clauses, current = [], []
        for token in tokenize(sentence):
            if token in CLAUSE_BREAKS:
                if current:
                    clauses.append(current)
                current = []
            else:
                current.append(token)
        if current:
            clauses.append(current)
        if not clauses:
            return []
        chunks = chunk_clause(clauses[0])
        head_chunk, relations = chunks[0], chunks[1:]
        trailing_attributes = []
        for clause in clauses[1:]:
            more, positions = _later_clause(clause)
            relations.extend(more)
            trailing_attributes.extend(positions)
        words = [w for w in head_chunk if w not in DETERMINERS]
        if not words or (_marker_at(words, 0)
                         and not words[0].endswith('ing')):
            return []
        if len(words) > 1 and words[-1] in POSITION_WORDS:
            words = [words[-1]] + words[:-1]
        head = words[-1]
        phrases = [f'{_article(head)} {head}']
        if 'of' in words[:-1]:
            start = next(i for i, w in enumerate(head_chunk)
                         if w not in DETERMINERS)
            phrases.append(' '.join(['the'] + head_chunk[start:]))
        else:
            attributes = [w for w in words[:-1] + trailing_attributes
                          if w not in NOT_ATTRIBUTES]
            phrases.extend(f'the {a} {head}' for a in attributes)
        merged = []
        for chunk in relations:
            rest = [w for w in chunk if w not in MARKER_WORDS]
            if merged and rest and rest[0] in BACK_REFERENCES:
                merged[-1] = merged[-1] + chunk
            else:
                merged.append(chunk)
        for chunk in merged:
            words = _simplify_relation(chunk)
            if words:
                phrases.append(' '.join(['the', head] + words))
        unique, seen = [], set()
        for phrase in phrases:
            if phrase not in seen:
                seen.add(phrase)
                unique.append(phrase)
        return unique[:self.max_phrases]
