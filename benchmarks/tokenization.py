"""What tokenising in the forward costs a training step, and what reading
the ids packed by the data workers costs instead (``tools/train.py
--tokenize-in-workers``, part of ``--fast``).

Per batch of B expressions (plus K calibration negatives each, which the
frozen CLIP scorer still tokenises in the forward), side by side in one
run, medians over repeats:

- ``forward, cold``: ``clip_token_ids`` of texts the process has not seen
  (BPE string work; the first epoch, and every epoch once the per-process
  cache of 65,536 texts is full: RefCOCO has 142k expressions);
- ``forward, cached``: the same texts again (BPE cache hits);
- ``primed``: unseen texts whose BPE ids the workers packed
  (``bpe_word_ids``, primed into the cache) before ``clip_token_ids``;
- ``packed``: ``tokens_of`` stacking the ids the workers packed.

Texts are the real RefCOCOg expressions of ``tests/data`` recombined into
distinct sentences, so nothing is cached across repeats.

    python benchmarks/tokenization.py --batch 48 --negatives 3
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


def real_words():
    from mmwris.datasets.refcoco import load_refs
    refs = load_refs(osp.join(REPO, 'tests', 'data', 'refcocog_umd',
                              'refs(umd).p'))
    words = sorted({word for ref in refs for sentence in ref['sentences']
                    for word in sentence['sent'].split()})
    if len(words) < 10:
        raise SystemExit('too few words in the RefCOCOg fixture')
    return words


def sentences(words, count, seed):
    """``count`` distinct sentences of 6-12 real words."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        length = int(torch.randint(6, 13, (1, ), generator=generator))
        picks = torch.randint(len(words), (length, ), generator=generator)
        out.append(' '.join(words[i] for i in picks.tolist()))
    return out


def median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=48)
    parser.add_argument('--negatives', type=int, default=3)
    parser.add_argument('--context-length', type=int, default=20)
    parser.add_argument('--repeats', type=int, default=30)
    args = parser.parse_args()

    from mmwris.datasets.transforms.formatting import TEXT_IDS, TEXT_MASK
    from mmwris.models.foundation.clip import bpe_word_ids, clip_token_ids
    from mmwris.models.segmentors.base_ris import BaseRISSegmentor
    from mmwris.structures import RISDataSample

    words = real_words()
    texts_per_batch = args.batch * (1 + args.negatives)
    batches = iter([sentences(words, texts_per_batch, seed)
                    for seed in range(args.repeats + 1)])
    cached = next(batches)
    clip_token_ids(cached, args.context_length)

    ids, mask = clip_token_ids(cached[:args.batch], args.context_length)
    samples = []
    for i in range(args.batch):
        sample = RISDataSample()
        sample.set_data({TEXT_IDS: ids[i], TEXT_MASK: mask[i]})
        samples.append(sample)

    class Reader:
        text_encoder = type('Encoder', (), dict(
            reads_packed_clip_ids=True, keep_eot=True,
            context_length=args.context_length))()
        tokens_of = BaseRISSegmentor.tokens_of

    reader = Reader()
    cold = median_ms(
        lambda: clip_token_ids(next(batches), args.context_length),
        args.repeats)
    warm = median_ms(lambda: clip_token_ids(cached, args.context_length),
                     args.repeats)
    unseen = sentences(words, texts_per_batch * args.repeats, seed=10_000)
    primed_batches = [unseen[i:i + texts_per_batch]
                      for i in range(0, len(unseen), texts_per_batch)]
    # What the workers pack: the BPE ids of each text (computed here,
    # outside the timing, as a worker process would).
    from mmwris.models.foundation.clip import bpe_tokenizer
    packed_ids = iter([{text: tuple(bpe_tokenizer().encode(text))
                        for text in batch} for batch in primed_batches])
    primed_texts = iter(primed_batches)

    def primed_step():
        bpe_word_ids.prime(next(packed_ids))
        clip_token_ids(next(primed_texts), args.context_length)

    primed = median_ms(primed_step, args.repeats)
    expressions_only = median_ms(
        lambda: clip_token_ids(cached[:args.batch], args.context_length),
        args.repeats)
    packed = median_ms(lambda: reader.tokens_of(samples), args.repeats)
    print(f'batch {args.batch} expressions + {args.negatives} negatives '
          f'each ({texts_per_batch} texts), context {args.context_length}, '
          f'torch threads {torch.get_num_threads()}')
    print('| in the training step | ms per batch |\n|---|---|')
    print(f'| forward, cold (unseen texts, expressions + negatives) '
          f'| {cold:.2f} |')
    print(f'| forward, cached (expressions + negatives) | {warm:.2f} |')
    print(f'| forward, cached (expressions only) | {expressions_only:.2f} |')
    print(f'| forward, BPE cache primed by the workers (unseen texts, '
          f'expressions + negatives) | {primed:.2f} |')
    print(f'| packed by the workers: tokens_of (expressions) '
          f'| {packed:.3f} |')
    print(f'moved to the workers (expressions, cold): '
          f'{cold / (1 + args.negatives):.2f} ms per step; '
          f'BPE cache {len(bpe_word_ids)} texts')


if __name__ == '__main__':
    main()
