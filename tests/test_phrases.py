"""PCNet phrases: reply parsing, the rule-based and OpenAI-compatible
decomposers, tools/decompose_phrases.py (resume, interrupts, failures) and
the dataset / LoadPhrases / flip support."""
import importlib.util
import json
import os.path as osp
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from mmcv.transforms import Compose

from conftest import DATA, REPO, run_env
from mmwris.datasets.transforms.phrases import pad_phrases
from mmwris.phrases import (BasePhraseDecomposer, OpenAICompatibleDecomposer,
                            PhraseDecompositionRunner, PhraseRequestError,
                            RuleBasedDecomposer, load_phrase_file,
                            load_prompt_template, parse_phrases)
from mmwris.phrases.rule_based import tokenize
from mmwris.registry import DATASETS

REAL_REFS = osp.join(DATA, 'refcocog_umd', 'refs(umd).p')
TOOL = osp.join(REPO, 'tools', 'decompose_phrases.py')
KEY_ENV, KEY = 'MMWRIS_TEST_API_KEY', 'sk-test-0123456789'
SUMMARY = re.compile(
    r'total (\d+), done now (\d+), skipped (\d+) \(already in cache\), '
    r'fallback (\d+), failed (\d+), retries (\d+)')


def load_tool():
    spec = importlib.util.spec_from_file_location('decompose_phrases', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def real_sentences():
    with open(REAL_REFS, 'rb') as f:
        refs = pickle.load(f, encoding='latin1')
    return {s['sent_id']: s['sent'] for r in refs for s in r['sentences']}


def summary_of(text):
    match = SUMMARY.search(text)
    assert match, text
    keys = ('total', 'done', 'skipped', 'fallback', 'failed', 'retries')
    return dict(zip(keys, map(int, match.groups())))


# ------------------------------------------------------------- parsing --
GOOD = ['a woman', 'the woman on the left']


@pytest.mark.parametrize('reply,expected', [
    ('1. a woman\n2. the woman on the left', GOOD),
    ('1) a woman\n2) the woman on the left', GOOD),
    ('(1) a woman\n(2) the woman on the left', GOOD),
    ('- a woman\n* the woman on the left\n\u2022 the woman in red',
     GOOD + ['the woman in red']),
    ('["a woman", "the woman on the left"]', GOOD),
    ("['a woman', 'the woman on the left']", GOOD),
    ('```json\n["a woman", "the woman on the left"]\n```', GOOD),
    ('{"phrases": ["a woman", "the woman on the left"]}', GOOD),
    ('Phrase 1: a woman\nPhrase 2: the woman on the left', GOOD),
    ('Sure! Here are the phrases:\n\n1. "a woman"\n2. \'the woman on the '
     'left\'\n\nThese phrases each describe the target woman with one cue '
     'taken from the expression.', GOOD),
    ('<think>\nThe target is a woman.\n1. nope\n</think>\n1. a woman\n'
     '2. the woman on the left', GOOD),
    ('the target must be a woman\n</think>\n1. a woman\n2. the woman on '
     'the left', GOOD),
    ('a woman\n\nthe woman on the left\n', GOOD),
    ('Here are the phrases:\na woman\nthe woman on the left\nI hope this '
     'helps!', GOOD),
    ('1. A woman\n2. a woman.\n3. the woman on the left;', ['A woman'] +
     GOOD[1:]),
    ('1. a woman 2. the woman on the left 3. the woman in red',
     GOOD + ['the woman in red']),
    ('**1. a woman**\n**2. the woman on the left**', GOOD),
    ('1. a woman (the target)\n2. the woman on the left \u2014 a relation',
     GOOD),
    ('1. a woman\n2. this phrase describes the woman who is standing on '
     'the left side of the picture near the table', GOOD[:1]),
    ('1. a woman\n   - the main subject\n2. the woman on the left', GOOD),
])
def test_parse_reply_shapes(reply, expected):
    assert parse_phrases(reply, 5) == expected


@pytest.mark.parametrize('reply', [
    None, '', '  \n\n ', '<think>only thoughts</think>',
    'Sure! Here are the phrases:', '1.\n2.\n3.', '[]', '{"phrases": []}',
    "I'm sorry, but I can't help with that request.", '```\n```', '12345',
    '1. "" \n2. ...'])
def test_parse_reply_without_phrases(reply):
    assert parse_phrases(reply, 5) == []


def test_parse_caps_and_word_limit():
    reply = '\n'.join(f'{i}. the cat number {i}' for i in range(1, 8))
    assert parse_phrases(reply, 3) == [
        'the cat number 1', 'the cat number 2', 'the cat number 3']
    assert parse_phrases('1. a b c d', 5, max_words=3) == []


# ---------------------------------------------------------- rule based --
@pytest.mark.parametrize('sentence,expected', [
    ('the yellow shape above the blue one',
     ['a shape', 'the yellow shape', 'the shape above the blue one']),
    ('big yellow triangle',
     ['a triangle', 'the big triangle', 'the yellow triangle']),
    ('the rightmost big object',
     ['an object', 'the rightmost object', 'the big object']),
    ('circle', ['a circle']),
    ('the purple one right of the green plus',
     ['the one', 'the purple one', 'the one right of the green plus']),
    ('woman in white shirt looking down at laptop',
     ['a woman', 'the woman in white shirt',
      'the woman looking down at laptop']),
    ('the chair which is above the dog',
     ['a chair', 'the chair above the dog']),
    ('umbrella leftside', ['an umbrella', 'the leftside umbrella']),
    ('a pigeon looking down , to the left of two other pigeons',
     ['a pigeon', 'the pigeon looking down',
      'the pigeon to the left of two other pigeons']),
    ('a woman wearing a purple bandanna on her head',
     ['a woman', 'the woman wearing a purple bandanna on her head']),
    ('a dove is sitting near another two doves',
     ['a dove', 'the dove sitting near another two doves']),
    ('a smiling woman wearing a black dress with a plaid bow on it . she is '
     'wearing ear rings and a watch',
     ['a woman', 'the smiling woman', 'the woman wearing a black dress',
      'the woman with a plaid bow on it',
      'the woman wearing ear rings and a watch']),
    ('the neck and chest of a person wearing a purple hooded sweatshirt',
     ['a person', 'the neck and chest of a person',
      'the person wearing a purple hooded sweatshirt']),
    ('on the left', []),
])
def test_rule_based_examples(sentence, expected):
    assert RuleBasedDecomposer(max_phrases=5).decompose(sentence) == expected


def test_rule_based_cap_and_determinism():
    sentence = ('a person sitting at a table behind a sandwich wearing a '
                'navy hoodie')
    full = RuleBasedDecomposer(5).decompose(sentence)
    assert full == ['a person', 'the person sitting at a table',
                    'the person behind a sandwich',
                    'the person wearing a navy hoodie']
    assert RuleBasedDecomposer(2).decompose(sentence) == full[:2]
    assert RuleBasedDecomposer(5).decompose(sentence) == full
    with pytest.raises(ValueError):
        RuleBasedDecomposer(0)


def test_rule_based_sensible_on_real_refcocog():
    decomposer = RuleBasedDecomposer(5)
    for sentence in real_sentences().values():
        phrases = decomposer.decompose(sentence)
        assert 1 <= len(phrases) <= 5 and len(set(phrases)) == len(phrases)
        assert re.fullmatch(r'(a|an|the) \S+', phrases[0]), phrases
        vocabulary = set(tokenize(sentence)) | {'a', 'an', 'the'}
        for phrase in phrases:
            assert set(phrase.split()) <= vocabulary, (sentence, phrase)


# ------------------------------------------------------ phrase file ----
def test_load_phrase_file_and_errors(tmp_path):
    good = tmp_path / 'good.json'
    good.write_text(json.dumps({'7': dict(sentence='a cat', phrases=['a cat'],
                                          status='fallback')}))
    assert load_phrase_file(str(good)) == {7: ['a cat']}
    cases = {
        'not json {': 'not valid JSON',
        '[1, 2]': 'expected a JSON object',
        '{"x1": {"sentence": "a", "phrases": ["a"], "status": "ok"}}':
        'key "x1"',
        '{"3": {"sentence": "a", "status": "ok"}}': 'key "3"',
        '{"4": {"sentence": "a", "phrases": [], "status": "ok"}}': 'key "4"',
        '{"5": {"sentence": "a", "phrases": ["a"], "status": "done"}}':
        'key "5"',
        '{"6": ["a"]}': 'key "6"',
    }
    for i, (content, message) in enumerate(cases.items()):
        path = tmp_path / f'bad{i}.json'
        path.write_text(content)
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            load_phrase_file(str(path))
        assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match='decompose_phrases'):
        load_phrase_file(str(tmp_path / 'missing.json'))


# ------------------------------------------------------- chat server ----
def chat_reply(content):
    return json.dumps({'choices': [{'index': 0, 'message': {
        'role': 'assistant', 'content': content}}]}).encode()


def good_phrases(sentence):
    words = sentence.split()
    phrases = [f'a {words[-1]}', 'the ' + ' '.join(words[:3])]
    return phrases[:1] if phrases[0] == phrases[1] else phrases


def good_reply(n, sentence):
    lines = [f'{i}. {p}' for i, p in enumerate(good_phrases(sentence), 1)]
    return 200, chat_reply('Sure! Here are the phrases:\n' + '\n'.join(lines)
                           + '\nThey all name the target.')


class ChatServer:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1.

    ``reply(n, sentence) -> (status, body bytes)`` answers the n-th request;
    the sentence is read from the default prompt's last line.
    """

    def __init__(self, reply, delay=0.0):
        self.reply, self.delay = reply, delay
        self.requests, self.lock = [], threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):

            def do_POST(self):
                body = json.loads(self.rfile.read(
                    int(self.headers['Content-Length'])))
                with owner.lock:
                    n = len(owner.requests)
                    owner.requests.append(dict(
                        path=self.path, body=body,
                        auth=self.headers.get('Authorization')))
                prompt = body['messages'][-1]['content']
                sentence = prompt.rsplit('Expression: ', 1)[-1].strip()
                time.sleep(owner.delay)
                status, data = (404, b'{}') \
                    if self.path != '/v1/chat/completions' \
                    else owner.reply(n, sentence)
                try:
                    self.send_response(status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_port}/v1'

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, args=(0.02, ),
                         daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _local_env(monkeypatch):
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')
    monkeypatch.setenv('NO_PROXY', '127.0.0.1,localhost')
    monkeypatch.setenv(KEY_ENV, KEY)


def decomposer(url, **kwargs):
    kwargs.setdefault('backoff', 0.01)
    return OpenAICompatibleDecomposer(url, 'test-model', api_key=KEY,
                                      **kwargs)


def test_openai_request_and_reply():
    sentence = 'woman in white shirt looking down at laptop'
    with ChatServer(good_reply) as server:
        phrases = decomposer(server.url, max_phrases=4).decompose(sentence)
    assert phrases == good_phrases(sentence)
    (request, ) = server.requests
    body = request['body']
    assert body['model'] == 'test-model' and body['temperature'] == 0
    assert sentence in body['messages'][-1]['content']
    assert 'at most 4 phrases' in body['messages'][-1]['content']
    assert request['auth'] == f'Bearer {KEY}'
    assert KEY not in repr(decomposer(server.url))


def test_openai_retries_429_and_5xx_but_not_4xx():
    def flaky(n, sentence):
        return (500, b'busy') if n < 2 else good_reply(n, sentence)

    with ChatServer(flaky) as server:
        backend = decomposer(server.url, retries=3)
        assert backend.decompose('a red cat') == good_phrases('a red cat')
    assert len(server.requests) == 3 and backend.num_retries == 2

    with ChatServer(lambda n, s: (429, b'slow down')) as server:
        backend = decomposer(server.url, retries=2)
        with pytest.raises(PhraseRequestError, match='HTTP 429.*3 attempts'):
            backend.decompose('a red cat')
    assert len(server.requests) == 3

    with ChatServer(lambda n, s: (400, b'bad model')) as server:
        with pytest.raises(PhraseRequestError, match='HTTP 400.*bad model'):
            decomposer(server.url, retries=3).decompose('a red cat')
    assert len(server.requests) == 1

    with ChatServer(lambda n, s: (200, b'<html>proxy</html>')) as server:
        with pytest.raises(PhraseRequestError, match='no chat completion'):
            decomposer(server.url).decompose('a red cat')


def test_openai_timeout_and_unreachable():
    with ChatServer(good_reply, delay=1.0) as server:
        backend = decomposer(server.url, timeout=0.2, retries=1)
        start = time.time()
        with pytest.raises(PhraseRequestError, match='timed out'):
            backend.decompose('a red cat')
        assert time.time() - start < 1.5
    assert len(server.requests) == 2
    port = server.server.server_port   # closed now: connection refused
    with pytest.raises(PhraseRequestError, match='cannot reach'):
        decomposer(f'http://127.0.0.1:{port}/v1', retries=1).decompose('x')


def test_prompt_template_file(tmp_path):
    template = tmp_path / 'prompt.txt'
    template.write_text('Give {max_phrases}.\nExpression: {sentence}')
    with ChatServer(good_reply) as server:
        decomposer(server.url, prompt_template=str(template),
                   max_phrases=2).decompose('a big dog')
    assert server.requests[0]['body']['messages'][-1]['content'] == \
        'Give 2.\nExpression: a big dog'
    template.write_text('no placeholder')
    with pytest.raises(ValueError, match='sentence'):
        load_prompt_template(str(template))


# ----------------------------------------------------------- the tool ---
def run_main(capsys, *args):
    code = tool.main([*map(str, args), '--no-progress'])
    out, err = capsys.readouterr()
    return code, out, err


def openai_args(url, out, *extra):
    return ('--refs', REAL_REFS, '--out', out, '--backend', 'openai',
            '--base-url', url, '--model', 'test-model', '--api-key-env',
            KEY_ENV, '--backoff', '0.01', *extra)


def test_tool_openai_good_flaky_and_malformed(tmp_path, capsys):
    sentences = real_sentences()
    out = tmp_path / 'phrases.json'

    def flaky(n, sentence):
        return (503, b'warming up') if n < 2 else good_reply(n, sentence)

    with ChatServer(flaky) as server:
        code, stdout, err = run_main(
            capsys, *openai_args(server.url, out, '--workers', '3'))
    assert code == 0, err
    assert summary_of(stdout) == dict(total=28, done=28, skipped=0,
                                      fallback=0, failed=0, retries=2)
    saved = json.loads(out.read_text())
    assert {int(k) for k in saved} == set(sentences)
    for sent_id, record in saved.items():
        assert record == dict(sentence=sentences[int(sent_id)],
                              phrases=good_phrases(record['sentence']),
                              status='ok')
    assert KEY not in out.read_text() + stdout + err
    assert {r['auth'] for r in server.requests} == {f'Bearer {KEY}'}

    malformed = ['', 'Sure! Here are the phrases:', '1.\n2.', '[]',
                 "I'm sorry, I can't do that."]

    def bad(n, sentence):
        return 200, chat_reply(malformed[n % len(malformed)])

    out = tmp_path / 'fallback.json'
    with ChatServer(bad) as server:
        code, stdout, err = run_main(
            capsys, *openai_args(server.url, out, '--limit', '6'))
    assert code == 0, err
    assert summary_of(stdout)['fallback'] == 6
    for record in json.loads(out.read_text()).values():
        assert record['status'] == 'fallback'
        assert record['phrases'] == [record['sentence']]


def test_tool_failures_not_cached_then_rerun(tmp_path, capsys):
    out = tmp_path / 'phrases.json'
    with ChatServer(lambda n, s: (500, b'down')) as server:
        code, stdout, err = run_main(capsys, *openai_args(
            server.url, out, '--limit', '4', '--retries', '2'))
    assert code == 1
    assert summary_of(stdout) == dict(total=4, done=0, skipped=0,
                                      fallback=0, failed=4, retries=8)
    assert len(server.requests) == 12
    first4 = list(real_sentences())[:4]
    assert 'failed (4)' in err and 'HTTP 500' in err
    assert all(str(i) in err for i in first4)
    assert not out.exists() or json.loads(out.read_text()) == {}

    with ChatServer(good_reply) as server:
        code, stdout, err = run_main(capsys, *openai_args(
            server.url, out, '--limit', '4'))
    assert code == 0, err
    assert summary_of(stdout)['done'] == 4
    assert sorted(map(int, json.loads(out.read_text()))) == sorted(first4)

    with ChatServer(lambda n, s: (500, b'down')) as server:
        code, stdout, err = run_main(capsys, *openai_args(
            server.url, out, '--retries', '0', '--workers', '1',
            '--max-consecutive-failures', '3'))
    assert code == 1 and 'Stopped after 3 failures' in err
    assert summary_of(stdout)['failed'] == 3 and len(server.requests) == 3


def test_tool_slow_server_times_out(tmp_path, capsys):
    out = tmp_path / 'phrases.json'
    with ChatServer(good_reply, delay=1.0) as server:
        code, stdout, err = run_main(capsys, *openai_args(
            server.url, out, '--limit', '2', '--timeout', '0.2',
            '--retries', '1'))
    assert code == 1 and 'timed out' in err
    assert summary_of(stdout)['failed'] == 2


def test_tool_rule_resume_matches_fresh_run(tmp_path, capsys):
    fresh, resumed = tmp_path / 'fresh.json', tmp_path / 'resumed.json'
    assert run_main(capsys, '--refs', REAL_REFS, '--out', fresh)[0] == 0
    code, stdout, _ = run_main(capsys, '--refs', REAL_REFS, '--out', resumed,
                               '--limit', '5')
    assert code == 0 and summary_of(stdout)['done'] == 5
    assert len(json.loads(resumed.read_text())) == 5
    code, stdout, _ = run_main(capsys, '--refs', REAL_REFS, '--out', resumed,
                               '--save-every', '3')
    assert code == 0
    assert summary_of(stdout) == dict(total=28, done=23, skipped=5,
                                      fallback=0, failed=0, retries=0)
    assert json.loads(resumed.read_text()) == json.loads(fresh.read_text())
    code, stdout, _ = run_main(capsys, '--refs', REAL_REFS, '--out', resumed,
                               '--split', 'val')
    assert summary_of(stdout)['skipped'] == 10


def test_tool_reads_config_and_rejects_foreign_cache(tmp_path, capsys,
                                                     toy_refer_root):
    config = osp.join(REPO, 'configs', 'tris',
                      'tris_clip-tiny_1xb32-3k_toyrefer-128x128.py')
    out = tmp_path / 'toy.json'
    code, stdout, err = run_main(
        capsys, config, '--out', out, '--split', 'val', 'testA',
        '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_refer_root}')
    assert code == 0, err
    with open(toy_refer_root / 'toyref' / 'refs(synth).p', 'rb') as f:
        refs = pickle.load(f)
    expected = {s['sent_id'] for r in refs if r['split'] in ('val', 'testA')
                for s in r['sentences']}
    assert set(load_phrase_file(str(out))) == expected
    assert summary_of(stdout)['total'] == len(expected)

    first_id = next(iter(real_sentences()))
    foreign = tmp_path / 'foreign.json'
    foreign.write_text(json.dumps({str(first_id): dict(
        sentence='a different sentence', phrases=['x'], status='ok')}))
    with pytest.raises(SystemExit, match='another dataset'):
        tool.main(['--refs', REAL_REFS, '--out', str(foreign)])
    foreign.write_text('{"1": ')
    with pytest.raises(SystemExit, match='foreign.json is not valid JSON'):
        tool.main(['--refs', REAL_REFS, '--out', str(foreign)])


class CountingDecomposer(BasePhraseDecomposer):

    def __init__(self, out):
        super().__init__(5)
        self.out, self.calls, self.saved_seen = out, [], []

    def decompose(self, sentence):
        self.calls.append(sentence)
        self.saved_seen.append(len(json.loads(self.out.read_text()))
                               if self.out.exists() else 0)
        return [] if sentence == 'mystery' else [f'the {sentence}']


def test_runner_dedupes_text_and_saves_periodically(tmp_path):
    out = tmp_path / 'phrases.json'
    backend = CountingDecomposer(out)
    expressions = [(1, 'cat'), (2, 'cat'), (3, 'dog'), (4, 'mystery'),
                   (5, 'owl'), (6, 'fox'), (7, 'dog')]
    summary = PhraseDecompositionRunner(backend, expressions, str(out),
                                        save_every=2, progress=False).run()
    assert backend.calls == ['cat', 'dog', 'mystery', 'owl', 'fox']
    assert backend.saved_seen == [0, 2, 4, 4, 6]   # saved every 2 ids
    assert summary['done'] == 7 and summary['fallback'] == 1
    saved = load_phrase_file(str(out))
    assert saved[2] == ['the cat'] and saved[7] == ['the dog']
    assert saved[4] == ['mystery']
    summary = PhraseDecompositionRunner(backend, expressions, str(out),
                                        retry_fallback=True,
                                        progress=False).run()
    assert summary['skipped'] == 6 and backend.calls[-1] == 'mystery'


# ------------------------------------------------ tool as a subprocess --
def run_tool(*args):
    env = dict(run_env(), no_proxy='127.0.0.1', NO_PROXY='127.0.0.1')
    env[KEY_ENV] = KEY
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=120)


def test_tool_subprocess_rule_and_openai(tmp_path):
    sentences = real_sentences()
    rule = tmp_path / 'rule.json'
    proc = run_tool('--refs', REAL_REFS, '--out', rule)
    assert proc.returncode == 0, proc.stderr
    assert '28/28' in proc.stdout
    assert summary_of(proc.stdout)['done'] == 28
    decomposer = RuleBasedDecomposer(5)
    for sent_id, phrases in load_phrase_file(str(rule)).items():
        assert phrases == decomposer.decompose(sentences[sent_id])

    out = tmp_path / 'llm.json'
    with ChatServer(good_reply) as server:
        proc = run_tool(*openai_args(server.url, out))
    assert proc.returncode == 0, proc.stderr
    assert summary_of(proc.stdout)['done'] == 28
    for sent_id, phrases in load_phrase_file(str(out)).items():
        assert phrases == good_phrases(sentences[sent_id])


@pytest.mark.parametrize('signum,code', [(signal.SIGINT, 130),
                                         (signal.SIGTERM, 143)])
def test_tool_interrupt_saves_and_rerun_completes(tmp_path, capsys, signum,
                                                  code):
    out = tmp_path / 'phrases.json'
    env = dict(run_env(), no_proxy='127.0.0.1', NO_PROXY='127.0.0.1')
    with ChatServer(good_reply, delay=0.25) as server:
        proc = subprocess.Popen(
            [sys.executable, TOOL, *openai_args(
                server.url, str(out), '--workers', '2', '--save-every', '1',
                '--no-progress')],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and len(json.loads(out.read_text())) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, 'the tool finished before the signal'
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    saved = json.loads(out.read_text())
    assert 2 <= len(saved) < 28
    assert f'{len(saved)} saved' in err

    with ChatServer(good_reply) as server:
        status, stdout, err = run_main(capsys, *openai_args(server.url, out))
    assert status == 0, err
    summary = summary_of(stdout)
    assert summary['skipped'] == len(saved)
    assert summary['done'] == 28 - len(saved)
    assert len(server.requests) == 28 - len(saved)


# ---------------------------------------------------- dataset support ---
def phrase_records(refs, phrases_of):
    return {str(s['sent_id']): dict(sentence=s['sent'],
                                    phrases=phrases_of(s), status='ok')
            for r in refs for s in r['sentences']}


def numbered_phrases(sent):
    """1 to 4 phrases, depending on the sent_id."""
    return [f'cue {i} of {sent["sent_id"]}'
            for i in range(sent['sent_id'] % 4 + 1)]


def build(root, **kwargs):
    cfg = dict(type='RefCOCODataset', data_root=str(root),
               refs_file='refs(umd).p', ann_file='instances.json',
               data_prefix=dict(img_path='images'), pipeline=[])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_dataset_requires_every_expression(real_refer_root):
    with open(real_refer_root / 'refs(umd).p', 'rb') as f:
        refs = pickle.load(f)
    records = phrase_records(refs, numbered_phrases)
    val_ids = [s['sent_id'] for r in refs if r['split'] == 'val'
               for s in r['sentences']]
    for sent_id in val_ids[:3]:
        del records[str(sent_id)]
    (real_refer_root / 'phrases.json').write_text(json.dumps(records))
    build(real_refer_root, split='train', phrase_file='phrases.json')
    with pytest.raises(KeyError) as info:
        build(real_refer_root, split='val', phrase_file='phrases.json')
    message = str(info.value)
    assert 'phrases.json' in message and 'lacks 3 expressions' in message
    assert str(val_ids[:3]) in message and 'decompose_phrases.py' in message

    (real_refer_root / 'empty.json').write_text('{}')
    with pytest.raises(KeyError, match=r'lacks 28 .*\.\.\. \(8 more\)'):
        build(real_refer_root, split=['train', 'val', 'test'],
              phrase_file='empty.json', test_mode=True)


def test_test_mode_phrases_padded_and_packed(real_refer_root):
    with open(real_refer_root / 'refs(umd).p', 'rb') as f:
        refs = pickle.load(f)
    records = phrase_records(refs, numbered_phrases)
    (real_refer_root / 'phrases.json').write_text(json.dumps(records))
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(32, 32), keep_ratio=False),
                dict(type='LoadPhrases', num_phrases=3),
                dict(type='PackRISInputs')]
    dataset = build(real_refer_root, split='val', test_mode=True,
                    phrase_file='phrases.json', pipeline=pipeline)
    lengths = set()
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        own = records[str(info['sent_id'])]['phrases']
        assert info['sentence_phrases'] == own
        sample = dataset[i]['data_samples']
        assert sample.phrases == (own + [sample.text] * 3)[:3]
        lengths.add(len(own))
    assert min(lengths) < 3 < max(lengths), 'padding and truncation seen'


def test_training_partner_from_same_image(toy_refer_root, tmp_path):
    with open(toy_refer_root / 'toyref' / 'refs(synth).p', 'rb') as f:
        refs = pickle.load(f)
    phrase_file = tmp_path / 'toy_phrases.json'
    phrase_file.write_text(json.dumps(phrase_records(refs, numbered_phrases)))
    by_ref = {r['ref_id']: r for r in refs}
    dataset = build(toy_refer_root, refs_file='toyref/refs(synth).p',
                    ann_file='toyref/instances.json', split='train',
                    phrase_file=str(phrase_file),
                    pipeline=[dict(type='SampleNegativeTexts', num_negatives=2),
                              dict(type='SampleIaDPartner'),
                              dict(type='LoadPhrases', num_phrases=2)])
    for i in range(len(dataset)):
        results = dataset[i]
        ref, partner = by_ref[results['ref_id']], by_ref[
            results['partner_ref_id']]
        assert partner['ref_id'] != ref['ref_id']
        assert partner['image_id'] == ref['image_id']
        sent = next(s for s in partner['sentences']
                    if s['sent_id'] == results['partner_sent_id'])
        assert results['partner_text'] == sent['sent']
        assert results['partner_phrases'] == pad_phrases(
            numbered_phrases(sent), sent['sent'], 2)
        own = next(s for s in ref['sentences']
                   if s['sent_id'] == results['sent_id'])
        assert results['phrases'] == pad_phrases(
            numbered_phrases(own), own['sent'], 2)
        assert len(results['neg_texts']) == 2
    partners = {dataset[0]['partner_sent_id'] for _ in range(30)}
    assert len(partners) > 1, 'the partner is drawn at random'


def test_training_without_other_ref_has_no_partner(real_refer_root):
    with open(real_refer_root / 'refs(umd).p', 'rb') as f:
        refs = pickle.load(f)
    (real_refer_root / 'phrases.json').write_text(
        json.dumps(phrase_records(refs, numbered_phrases)))
    plain = build(real_refer_root, split='train',
                  pipeline=[dict(type='SampleIaDPartner')])
    results = plain[0]
    assert results['partner_text'] is None
    assert results['partner_ref_id'] is results['partner_sent_id'] is None
    assert 'sentence_phrases' not in results
    with pytest.raises(KeyError, match='sent_id=.*phrase_file'):
        Compose([dict(type='LoadPhrases')])(results)
    with_phrases = build(real_refer_root, split='train',
                         phrase_file='phrases.json',
                         pipeline=[dict(type='SampleIaDPartner'),
                                   dict(type='LoadPhrases', num_phrases=2)])
    results = with_phrases[0]
    assert results['partner_phrases'] is None
    assert len(results['phrases']) == 2


def test_flip_swaps_phrases_and_partner():
    results = dict(
        img=np.zeros((8, 10, 3), np.uint8), img_shape=(8, 10),
        text='the man on the left', neg_texts=['right dog'],
        phrases=['a man', 'the man on the left'],
        partner_text='the leftmost cat',
        partner_phrases=['a cat', 'the leftmost cat'])
    flipped = Compose([dict(type='RandomFlipWithText', prob=1.0)])(
        dict(results))
    assert flipped['text'] == 'the man on the right'
    assert flipped['neg_texts'] == ['left dog']
    assert flipped['phrases'] == ['a man', 'the man on the right']
    assert flipped['partner_text'] == 'the rightmost cat'
    assert flipped['partner_phrases'] == ['a cat', 'the rightmost cat']
    alone = Compose([dict(type='RandomFlipWithText', prob=1.0)])(
        dict(results, partner_text=None, partner_phrases=None))
    assert alone['partner_text'] is None and alone['partner_phrases'] is None
