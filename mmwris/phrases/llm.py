"""Phrase decomposition by a chat model behind an OpenAI-compatible API."""
import http.client
import json
import os.path as osp
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import List, Optional

from mmwris.registry import TASK_UTILS
from .base import BasePhraseDecomposer
from .parsing import MAX_PHRASE_WORDS, parse_phrases

DEFAULT_PROMPT_TEMPLATE = osp.join(
    osp.dirname(osp.abspath(__file__)), 'prompts', 'decompose.txt')


class PhraseRequestError(RuntimeError):
    """A chat-completion request failed (after all retries, if any)."""


def load_prompt_template(path: Optional[str] = None) -> str:
    """Read a prompt template; it must contain ``{sentence}`` (and may use
    ``{max_phrases}``). ``None`` gives the packaged default."""
    path = path or DEFAULT_PROMPT_TEMPLATE
    try:
        with open(path, encoding='utf-8') as f:
            template = f.read()
    except OSError as e:
        raise FileNotFoundError(
            f'Cannot read the prompt template {path}: {e}') from e
    if '{sentence}' not in template:
        raise ValueError(f'The prompt template {path} has no "{{sentence}}" '
                         'placeholder for the expression.')
    return template


@TASK_UTILS.register_module()
class OpenAICompatibleDecomposer(BasePhraseDecomposer):
    """Ask a chat model (vLLM, llama.cpp server, Ollama, ...) for phrases.

    Sends ``POST {base_url}/chat/completions`` with one user message (the
    template with ``{sentence}`` and ``{max_phrases}`` filled in) at
    temperature 0 and parses the reply with :func:`parse_phrases`.
    Connection errors, timeouts, HTTP 429 and 5xx are retried ``retries``
    times with exponential backoff (``backoff * 2**attempt`` seconds, at
    most ``max_backoff``, or the server's ``Retry-After``); other HTTP
    errors fail at once. Thread-safe: one instance serves a thread pool.

    Args:
        base_url (str): API root, e.g. ``http://localhost:8000/v1``.
        model (str): Model name sent in the request.
        api_key (str, optional): Sent as ``Authorization: Bearer``.
        prompt_template (str, optional): Template file; defaults to
            ``mmwris/phrases/prompts/decompose.txt``.
        max_phrases (int): Phrases kept per expression. Defaults to 5.
        timeout (float): Seconds per request. Defaults to 60.
        retries (int): Retries after the first attempt. Defaults to 3.
        backoff (float): First retry delay in seconds. Defaults to 1.
        max_backoff (float): Longest retry delay. Defaults to 30.
        max_tokens (int): Reply length limit. Defaults to 512.
        max_words (int): Longer reply items are dropped as prose.
    """

    def __init__(self,
                 base_url: str,
                 model: str,
                 api_key: Optional[str] = None,
                 prompt_template: Optional[str] = None,
                 max_phrases: int = 5,
                 timeout: float = 60.0,
                 retries: int = 3,
                 backoff: float = 1.0,
                 max_backoff: float = 30.0,
                 max_tokens: int = 512,
                 max_words: int = MAX_PHRASE_WORDS) -> None:
        super().__init__(max_phrases)
        if not base_url.startswith(('http://', 'https://')):
            raise ValueError(f'base_url must be an http(s) URL, got '
                             f'"{base_url}".')
        self.url = base_url.rstrip('/') + '/chat/completions'
        self.model = model
        self._api_key = api_key
        self.template_file = prompt_template or DEFAULT_PROMPT_TEMPLATE
        self.template = load_prompt_template(prompt_template)
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_tokens = max_tokens
        self.max_words = max_words
        self.num_retries = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(url={self.url!r}, '
                f'model={self.model!r}, template={self.template_file!r})')

    def prompt(self, sentence: str) -> str:
        return self.template.replace('{max_phrases}', str(
            self.max_phrases)).replace('{sentence}', sentence)

    def request_body(self, sentence: str) -> dict:
        return dict(model=self.model, temperature=0, seed=0,
                    max_tokens=self.max_tokens,
                    messages=[dict(role='user',
                                   content=self.prompt(sentence))])

    def _post(self, body: bytes) -> str:
        headers = {'Content-Type': 'application/json'}
        if self._api_key:
            headers['Authorization'] = f'Bearer {self._api_key}'
        request = urllib.request.Request(
            self.url, data=body, headers=headers, method='POST')
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:
            raw = reply.read()
        try:
            content = json.loads(raw)['choices'][0]['message'].get('content')
        except (ValueError, KeyError, IndexError, TypeError,
                AttributeError) as e:
            raise PhraseRequestError(
                f'{self.url} sent no chat completion '
                f'({type(e).__name__}): {raw[:200]!r}') from e
        return content or ''

    def _delay(self, attempt: int, error: Exception) -> float:
        delay = self.backoff * 2**attempt
        retry_after = getattr(error, 'headers', None) and \
            error.headers.get('Retry-After')
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                pass
        return min(self.max_backoff, delay) * random.uniform(1.0, 1.1)

    def complete(self, sentence: str) -> str:
        """The model's reply text for ``sentence``."""
        body = json.dumps(self.request_body(sentence)).encode('utf-8')
        for attempt in range(self.retries + 1):
            try:
                return self._post(body)
            except urllib.error.HTTPError as e:
                try:
                    detail = e.read()[:200].decode('utf-8', 'replace')
                except (OSError, http.client.HTTPException):
                    detail = ''
                error = PhraseRequestError(
                    f'HTTP {e.code} from {self.url}: {detail}')
                if e.code != 429 and e.code < 500:
                    raise error from e
                last, cause = error, e
            except (urllib.error.URLError, http.client.HTTPException,
                    ConnectionError, socket.timeout, TimeoutError) as e:
                reason = getattr(e, 'reason', e)
                last = PhraseRequestError(
                    f'cannot reach {self.url}: {type(reason).__name__}: '
                    f'{reason}')
                cause = e
            if attempt < self.retries:
                with self._lock:
                    self.num_retries += 1
                time.sleep(self._delay(attempt, cause))
        raise PhraseRequestError(
            f'{last} (gave up after {self.retries + 1} attempts)') from cause

    def decompose(self, sentence: str) -> List[str]:
        return parse_phrases(self.complete(sentence), self.max_phrases,
                             self.max_words)
