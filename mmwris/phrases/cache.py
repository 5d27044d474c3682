"""The phrase file: JSON keyed by ``sent_id``, also the tool's cache."""
import json
import os.path as osp
from typing import Dict, List

from mmengine.fileio import get_local_path

from mmwris.utils.io import atomic_write_json

PHRASE_STATUSES = ('ok', 'fallback')


def _check_record(path: str, key: str, record) -> None:
    where = f'Phrase file {path}, key "{key}"'
    if not isinstance(record, dict):
        raise ValueError(f'{where}: expected an object with "sentence", '
                         f'"phrases" and "status", got '
                         f'{type(record).__name__}.')
    missing = [k for k in ('sentence', 'phrases', 'status')
               if k not in record]
    if missing:
        raise ValueError(f'{where}: missing {missing}.')
    if not isinstance(record['sentence'], str):
        raise ValueError(f'{where}: "sentence" must be a string.')
    phrases = record['phrases']
    if not isinstance(phrases, list) or not phrases or not all(
            isinstance(p, str) and p.strip() for p in phrases):
        raise ValueError(f'{where}: "phrases" must be a non-empty list of '
                         f'non-empty strings, got {phrases!r}.')
    if record['status'] not in PHRASE_STATUSES:
        raise ValueError(f'{where}: "status" must be one of '
                         f'{PHRASE_STATUSES}, got {record["status"]!r}.')


def load_phrase_records(path: str) -> Dict[int, dict]:
    """Validated records of a phrase file::

        {"<sent_id>": {"sentence": str, "phrases": [str, ...],
                       "status": "ok" | "fallback"}}

    Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the file (and the key at fault) for anything else.
    """
    try:
        with get_local_path(path) as local_path:
            with open(local_path, encoding='utf-8') as f:
                data = json.load(f)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f'Phrase file {path} does not exist; write it with '
            'tools/decompose_phrases.py.') from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'Phrase file {path} is not valid JSON: {e}') from e
    if not isinstance(data, dict):
        raise ValueError(f'Phrase file {path}: expected a JSON object keyed '
                         f'by sent_id, got {type(data).__name__}.')
    records = {}
    for key, record in data.items():
        try:
            sent_id = int(key)
        except ValueError:
            raise ValueError(f'Phrase file {path}: key "{key}" is not a '
                             'sent_id (an integer).') from None
        _check_record(path, key, record)
        records[sent_id] = record
    return records


def load_phrase_file(path: str) -> Dict[int, List[str]]:
    """``sent_id -> phrases`` of a phrase file (see
    :func:`load_phrase_records`)."""
    return {sent_id: list(record['phrases'])
            for sent_id, record in load_phrase_records(path).items()}


class PhraseCache:
    """The records of a phrase file, kept in memory and saved atomically.

    Args:
        path (str): The phrase file; loaded (and validated) if it exists.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.records: Dict[int, dict] = (
            load_phrase_records(path) if osp.exists(path) else {})
        self.dirty = False

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, sent_id: int) -> bool:
        return sent_id in self.records

    def get(self, sent_id: int):
        return self.records.get(sent_id)

    def add(self, sent_id: int, sentence: str, phrases: List[str],
            status: str) -> None:
        record = dict(sentence=sentence, phrases=list(phrases), status=status)
        _check_record(self.path, str(sent_id), record)
        self.records[int(sent_id)] = record
        self.dirty = True

    def save(self) -> None:
        """Write every record (sorted by sent_id) by write-then-rename."""
        data = {str(k): self.records[k] for k in sorted(self.records)}
        atomic_write_json(self.path, data, indent=1, ensure_ascii=False)
        self.dirty = False
