"""Resumable decomposition of many expressions into a phrase file."""
import sys
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Dict, Iterator, List, Sequence, Tuple

from mmengine.utils import ProgressBar

from .base import BasePhraseDecomposer
from .cache import PhraseCache


class PhraseDecompositionRunner:
    """Decompose expressions and store them in a phrase file.

    The phrase file is the cache: expressions already in it are skipped.
    Each distinct sentence text is decomposed once (for all its sent_ids)
    by up to ``workers`` threads. A result without any phrase is stored as
    ``[sentence]`` with status ``"fallback"``; an expression whose
    decomposition raised (e.g. a request that failed after all retries) is
    not stored, so a rerun tries it again. The file is rewritten by
    write-then-rename every ``save_every`` stored expressions, at the end
    and when the run is interrupted (the exception then propagates).

    Args:
        decomposer (BasePhraseDecomposer): The backend.
        expressions (Sequence[tuple[int, str]]): ``(sent_id, sentence)``.
        out_file (str): The phrase file.
        workers (int): Concurrent decompositions (1: in this thread).
        save_every (int): Stored expressions between two saves.
        max_consecutive_failures (int): Stop after this many failures in a
            row (the backend is probably down); 0 never stops.
        retry_fallback (bool): Decompose cached fallbacks again.
        progress (bool): Show a progress bar.
    """

    def __init__(self,
                 decomposer: BasePhraseDecomposer,
                 expressions: Sequence[Tuple[int, str]],
                 out_file: str,
                 workers: int = 1,
                 save_every: int = 100,
                 max_consecutive_failures: int = 0,
                 retry_fallback: bool = False,
                 progress: bool = True) -> None:
        self.decomposer = decomposer
        self.expressions = list(expressions)
        self.cache = PhraseCache(out_file)
        self.workers = max(1, int(workers))
        self.save_every = max(1, int(save_every))
        self.max_consecutive_failures = max_consecutive_failures
        self.retry_fallback = retry_fallback
        self.progress = progress
        self.done = self.fallback = self.skipped = 0
        self.failures: Dict[int, str] = {}
        self.aborted = False
        self._check_sentences()

    def _check_sentences(self) -> None:
        """A cached sent_id must hold the same sentence as the input."""
        for sent_id, sentence in self.expressions:
            record = self.cache.get(sent_id)
            if record is not None and record['sentence'] != sentence:
                raise ValueError(
                    f'{self.cache.path} holds sent_id={sent_id} with the '
                    f'sentence {record["sentence"]!r}, but the input says '
                    f'{sentence!r}: it belongs to another dataset. Use '
                    'another output file.')

    def _pending(self) -> 'OrderedDict[str, List[int]]':
        """Sentence text -> sent_ids still to decompose."""
        groups = OrderedDict()
        for sent_id, sentence in self.expressions:
            record = self.cache.get(sent_id)
            if record is not None and not (
                    self.retry_fallback and record['status'] == 'fallback'):
                self.skipped += 1
                continue
            groups.setdefault(sentence, []).append(sent_id)
        return groups

    def _safe_decompose(self, sentence: str):
        try:
            return self.decomposer.decompose(sentence), None
        except Exception as e:
            return None, f'{type(e).__name__}: {e}'

    def _results(self, sentences: List[str]) -> Iterator[tuple]:
        """``(sentence, phrases, error)`` as they complete."""
        if self.workers == 1:
            for sentence in sentences:
                yield (sentence, *self._safe_decompose(sentence))
            return
        executor = ThreadPoolExecutor(self.workers)
        todo = iter(sentences)
        running = {}
        try:
            while True:
                while len(running) < 2 * self.workers:
                    sentence = next(todo, None)
                    if sentence is None:
                        break
                    running[executor.submit(self._safe_decompose,
                                            sentence)] = sentence
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield (running.pop(future), *future.result())
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def run(self) -> dict:
        """Decompose what is missing; return the summary."""
        groups = self._pending()
        bar = ProgressBar(sum(map(len, groups.values())), file=sys.stdout) \
            if self.progress and groups else None
        unsaved = failed_in_row = 0
        results = self._results(list(groups))
        try:
            for sentence, phrases, error in results:
                sent_ids = groups[sentence]
                if error is not None:
                    self.failures.update((i, error) for i in sent_ids)
                    failed_in_row += 1
                else:
                    status = 'ok' if phrases else 'fallback'
                    for sent_id in sent_ids:
                        self.cache.add(sent_id, sentence,
                                       phrases or [sentence], status)
                    self.done += len(sent_ids)
                    self.fallback += len(sent_ids) * (status == 'fallback')
                    unsaved += len(sent_ids)
                    failed_in_row = 0
                if bar is not None:
                    bar.update(len(sent_ids))
                if unsaved >= self.save_every:
                    self.cache.save()
                    unsaved = 0
                if self.max_consecutive_failures and \
                        failed_in_row >= self.max_consecutive_failures:
                    self.aborted = True
                    break
        finally:
            results.close()
            if self.cache.dirty:
                self.cache.save()
            if bar is not None:
                bar.file.write('\n')
        return self.summary()

    def summary(self) -> dict:
        return dict(total=len(self.expressions), done=self.done,
                    skipped=self.skipped, fallback=self.fallback,
                    failed=len(self.failures), saved=len(self.cache),
                    retries=getattr(self.decomposer, 'num_retries', 0),
                    aborted=self.aborted,
                    failures={str(k): v for k, v in self.failures.items()})
