"""Decompose referring expressions into target-related phrases (PCNet).

    python tools/decompose_phrases.py CONFIG --out phrases.json \
        [--split train val] [--backend rule|openai]
    python tools/decompose_phrases.py --refs data/refcocog/refs(umd).p \
        --out phrases.json --backend openai \
        --base-url http://localhost:8000/v1 --model Qwen2.5-7B-Instruct

With a config, the refs pickle is ``data_root/refs_file`` of
``train_dataloader.dataset``. Writes ``{"<sent_id>": {"sentence": ...,
"phrases": [...], "status": "ok" | "fallback"}}``, the file the dataset's
``phrase_file`` reads. The output is also the cache: it is rewritten by
write-then-rename every ``--save-every`` results, at the end and on Ctrl-C /
SIGTERM, and a rerun skips the sent_ids it holds. Expressions whose
requests failed are not stored and make the exit status non-zero: run
again to retry them. The API key is read from the environment variable
named by ``--api-key-env`` and never written anywhere.
"""
import argparse
import glob
import os
import os.path as osp
import signal
import sys
from collections import defaultdict
from typing import List, Tuple

from mmengine.config import Config, DictAction

from mmwris.datasets.refcoco import expression_text, load_refs
from mmwris.phrases import (OpenAICompatibleDecomposer,
                            PhraseDecompositionRunner, RuleBasedDecomposer)

EXIT_FAILED, EXIT_SIGINT, EXIT_SIGTERM = 1, 130, 143
DEFAULT_WORKERS = dict(rule=1, openai=4)
DEFAULT_SAVE_EVERY = dict(rule=5000, openai=100)


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('config', nargs='?',
                        help='config whose train_dataloader.dataset names '
                        'data_root and refs_file')
    parser.add_argument('--refs', help='refs pickle (instead of a config)')
    parser.add_argument('--split', nargs='+',
                        help='refer split(s) (default: all in the file)')
    parser.add_argument('--out', required=True, help='output JSON file')
    parser.add_argument('--backend', choices=['rule', 'openai'],
                        default='rule')
    parser.add_argument('--base-url', default='http://localhost:8000/v1',
                        help='OpenAI-compatible API root')
    parser.add_argument('--model', help='model name (openai backend)')
    parser.add_argument('--api-key-env', default='OPENAI_API_KEY',
                        help='environment variable holding the API key')
    parser.add_argument('--prompt-template',
                        help='prompt file with {sentence} and {max_phrases} '
                        '(default: mmwris/phrases/prompts/decompose.txt)')
    parser.add_argument('--max-phrases', type=int, default=5)
    parser.add_argument('--workers', type=int,
                        help='concurrent requests (default: 1 rule, 4 '
                        'openai)')
    parser.add_argument('--retries', type=int, default=3,
                        help='retries of a failed request')
    parser.add_argument('--backoff', type=float, default=1.0,
                        help='first retry delay in seconds (doubles)')
    parser.add_argument('--timeout', type=float, default=60.0,
                        help='seconds per request')
    parser.add_argument('--max-consecutive-failures', type=int, default=20,
                        help='stop after this many failed expressions in a '
                        'row (0: never)')
    parser.add_argument('--limit', type=int,
                        help='only the first N expressions')
    parser.add_argument('--save-every', type=int,
                        help='results between two saves (default: 5000 '
                        'rule, 100 openai)')
    parser.add_argument('--retry-fallback', action='store_true',
                        help='decompose cached fallbacks again')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config')
    args = parser.parse_args(argv)
    if (args.config is None) == (args.refs is None):
        parser.error('give either a CONFIG or --refs')
    if args.backend == 'openai' and not args.model:
        parser.error('--backend openai needs --model')
    if args.max_phrases < 1:
        parser.error('--max-phrases must be >= 1')
    return args


def refs_file_of(config: str, cfg_options=None) -> str:
    """``data_root/refs_file`` of the config's training dataset."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    dataset = cfg.get('train_dataloader', {}).get('dataset')
    while isinstance(dataset, dict) and 'refs_file' not in dataset \
            and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    if not isinstance(dataset, dict) or 'refs_file' not in dataset:
        raise SystemExit(f'{config}: train_dataloader.dataset has no '
                         'refs_file; pass --refs instead.')
    refs_file = dataset['refs_file']
    if dataset.get('data_root') and not osp.isabs(refs_file):
        refs_file = osp.join(dataset['data_root'], refs_file)
    return refs_file


def collect_expressions(refs_file: str, splits=None) -> List[Tuple[int, str]]:
    """``(sent_id, sentence)`` of the split(s), in refs order; the same
    text as ``RefCOCODataset`` uses."""
    refs = load_refs(refs_file)
    available = sorted({ref['split'] for ref in refs})
    for split in splits or []:
        if split not in available:
            raise SystemExit(f'Unknown split "{split}" for {refs_file}: it '
                             f'has {available}.')
    texts = {}
    for ref in refs:
        if splits and ref['split'] not in splits:
            continue
        for sent in ref['sentences']:
            sent_id = int(sent['sent_id'])
            text = expression_text(sent)
            if not text:
                raise SystemExit(f'{refs_file}: sent_id={sent_id} of '
                                 f'ref_id={ref["ref_id"]} is empty.')
            if texts.setdefault(sent_id, text) != text:
                raise SystemExit(f'{refs_file}: sent_id={sent_id} appears '
                                 'twice with different sentences.')
    return list(texts.items())


def build_decomposer(args):
    if args.backend == 'rule':
        return RuleBasedDecomposer(max_phrases=args.max_phrases)
    api_key = os.environ.get(args.api_key_env) or None
    if api_key is None:
        print(f'note: ${args.api_key_env} is not set; sending no API key.',
              file=sys.stderr)
    return OpenAICompatibleDecomposer(
        base_url=args.base_url, model=args.model, api_key=api_key,
        prompt_template=args.prompt_template, max_phrases=args.max_phrases,
        timeout=args.timeout, retries=args.retries, backoff=args.backoff)


def report_failures(failures: dict, shown: int = 20) -> None:
    """List the failed sent_ids grouped by error."""
    by_error = defaultdict(list)
    for sent_id, error in failures.items():
        by_error[error].append(sent_id)
    for error, sent_ids in by_error.items():
        more = (f' ... ({len(sent_ids) - shown} more)'
                if len(sent_ids) > shown else '')
        print(f'failed ({len(sent_ids)}): sent_ids '
              f'{", ".join(sent_ids[:shown])}{more}: {error}',
              file=sys.stderr)


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    args = parse_args(argv)
    refs_file = args.refs or refs_file_of(args.config, args.cfg_options)
    expressions = collect_expressions(refs_file, args.split)
    if args.limit is not None:
        expressions = expressions[:args.limit]
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    for stale in glob.glob(glob.escape(args.out) + '.tmp-*'):
        os.remove(stale)
    try:
        decomposer = build_decomposer(args)
        runner = PhraseDecompositionRunner(
            decomposer, expressions, args.out,
            workers=args.workers or DEFAULT_WORKERS[args.backend],
            save_every=args.save_every or DEFAULT_SAVE_EVERY[args.backend],
            max_consecutive_failures=args.max_consecutive_failures,
            retry_fallback=args.retry_fallback,
            progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = runner.run()
    except (KeyboardInterrupt, Terminated) as e:
        code = EXIT_SIGINT if isinstance(e, KeyboardInterrupt) \
            else EXIT_SIGTERM
        print(f'\nInterrupted: {runner.done} expressions done in this run; '
              f'{len(runner.cache)} saved in {args.out}. Run the same '
              'command again to continue.', file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    print(f'{refs_file} -> {args.out} ({args.backend}): '
          f'total {summary["total"]}, done now {summary["done"]}, skipped '
          f'{summary["skipped"]} (already in cache), fallback '
          f'{summary["fallback"]}, failed {summary["failed"]}, retries '
          f'{summary["retries"]}')
    if summary['failures']:
        report_failures(summary['failures'])
    if summary['aborted']:
        print(f'Stopped after {args.max_consecutive_failures} failures in a '
              'row: is the server up?', file=sys.stderr)
    if summary['failed'] or summary['aborted']:
        print(f'{summary["failed"]} expressions failed and are not in '
              f'{args.out}; run again to retry them.', file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == '__main__':
    status = main()
    if status in (EXIT_SIGINT, EXIT_SIGTERM):
        # Requests still running in worker threads would delay a normal
        # exit until they time out; everything done is saved already.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
