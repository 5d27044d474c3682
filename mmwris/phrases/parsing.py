"""Turn a chat model's free-form reply into a clean list of phrases."""
import ast
import json
import re
from typing import List, Optional

MAX_PHRASE_WORDS = 12

_THINK = re.compile(r'<think>.*?</think>', re.S | re.I)
_FENCE = re.compile(r'^\s*```[\w-]*\s*$', re.M)
_STRUCTURES = (re.compile(r'\[.*\]', re.S), re.compile(r'\{.*\}', re.S),
               re.compile(r'\[[^\[\]]*\]'))
_NUMBERED = re.compile(
    r'^(?:\(?\d{1,2}\s*[.):\]]|\[\d{1,2}\]|'
    r'(?:phrase|cue)\s*#?\s*\d{1,2}\s*[:.)\-\u2013])\s*', re.I)
_BULLET = re.compile(r'^[-*+\u2022\u00b7\u2023\u25e6\u2013]\s+')
_INLINE_NUMBER = re.compile(r'\s+(?=\(?\d{1,2}[.)]\s)')
_PREAMBLE = re.compile(
    r'^(?:sure|certainly|of course|okay|ok|alright|here (?:is|are)|below|'
    r'note|these (?:are|phrases)|this (?:is|list)|i (?:hope|have|think)|'
    r"i've|i'm|i am|sorry|unfortunately|as an ai|let me|"
    r'the (?:phrases|target)|explanation|output|answer|expression|'
    r'sentence|input|phrases)\b', re.I)
_QUOTES = '"\'`\u201c\u201d\u2018\u2019\u00ab\u00bb'
_QUOTED = re.compile(r'^["\u201c\u00ab](.+?)["\u201d\u00bb]')
_TRAILING_NOTE = re.compile(r'\s+(?:\([^()]*\)|(?:\u2014|--|\u2013)\s.*)$')


def _strip_thinking(reply: str) -> str:
    """Drop ``<think>...</think>`` blocks, an unclosed ``<think>`` tail and
    everything before a lone ``</think>``."""
    text = _THINK.sub('\n', reply)
    if re.search(r'</think>', text, re.I):
        text = re.split(r'</think>', text, flags=re.I)[-1]
    return re.split(r'<think>', text, flags=re.I)[0]


def _structured_items(text: str) -> Optional[List[str]]:
    """Strings of a JSON (or Python) list, or of the first list value of a
    JSON object (``[]`` for an empty one); ``None`` if the reply holds no
    such structure."""
    matches = (m for pattern in _STRUCTURES for m in pattern.finditer(text))
    for match in matches:
        value = None
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(match.group(0))
                break
            except (ValueError, SyntaxError, TypeError, MemoryError,
                    RecursionError):
                continue
        if isinstance(value, dict):
            value = next((v for v in value.values() if isinstance(v, list)),
                         None)
        if isinstance(value, list):
            items = [v for v in value if isinstance(v, str)]
            if items or not value:
                return items
    return None


def _line_items(text: str, max_words: int) -> List[str]:
    """Items of a numbered list, else of a bulleted list, else the short
    non-preamble lines."""
    numbered, bulleted, plain = [], [], []
    for line in text.splitlines():
        line = line.replace('**', '').replace('__', '').strip().lstrip('>#')
        line = line.strip()
        if not line:
            continue
        match = _NUMBERED.match(line)
        if match:
            numbered.extend(_INLINE_NUMBER.split(line[match.end():]))
            continue
        match = _BULLET.match(line)
        if match:
            bulleted.append(line[match.end():])
        elif not (line.endswith(':') or _PREAMBLE.match(line)
                  or len(line.split()) > max_words):
            plain.append(line)
    if numbered:
        return [re.sub(_NUMBERED, '', item) for item in numbered]
    if bulleted:
        return bulleted
    if len(plain) == 1 and ';' in plain[0]:
        return plain[0].split(';')
    return plain


def clean_phrase(item: str) -> str:
    """Strip quotes, a trailing note in brackets or after a dash, end
    punctuation and extra spaces from one item."""
    item = ' '.join(item.split())
    quoted = _QUOTED.match(item)
    if quoted:
        item = quoted.group(1)
    item = _TRAILING_NOTE.sub('', item)
    item = item.strip(_QUOTES + ' ').rstrip('.,;:!').strip(_QUOTES + ' ')
    return ' '.join(item.split())


def parse_phrases(reply: Optional[str], max_phrases: int,
                  max_words: int = MAX_PHRASE_WORDS) -> List[str]:
    """Phrases of a model reply: at most ``max_phrases``, in reply order.

    Understands JSON / Python lists (also inside a JSON object or a code
    fence), numbered lists ("1. ...", "1) ...", "(1) ...", "Phrase 1:
    ..."), bullets ("-", "*", "•") and plain lines; drops
    ``<think>...</think>`` blocks, preambles ("Sure! Here are the
    phrases:"), trailing explanations, quotes, items of more than
    ``max_words`` words and case-insensitive duplicates. A reply without a
    usable phrase gives ``[]``.
    """
    if not reply:
        return []
    text = _FENCE.sub('\n', _strip_thinking(str(reply)))
    items = _structured_items(text)
    if items is None:
        items = _line_items(text, max_words)
    phrases, seen = [], set()
    for item in items:
        phrase = clean_phrase(item)
        key = phrase.lower()
        if not phrase or key in seen or len(phrase.split()) > max_words \
                or not re.search(r'[^\W\d_]', phrase):
            continue
        seen.add(key)
        phrases.append(phrase)
        if len(phrases) == max_phrases:
            break
    return phrases
