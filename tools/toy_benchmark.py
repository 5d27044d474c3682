"""The toy benchmark: the main job of ``tools/run_toy_job.sh``.

From nothing to a results table, fully offline, on a CPU:

1. data: the toy referring data (``make_toy_refer.py``), the pretraining
   corpora (captions, class-level instances: ``make_toy_corpora.py``) and
   the SAM-like mask corpus (``make_toy_masks.py``);
2. stand-ins: a tiny CLIP pretrained on the captions and a tiny SAM
   pretrained on the masks, through ``tools/train.py``, then exported with
   ``tools/model_converters/export_{clip,sam}.py`` to ``data/toy_world/``
   (cached: a later run reuses an export whose settings match);
3. methods: each row of the table is trained with ``tools/train.py`` (or
   is evaluation only) and evaluated with ``tools/test.py`` on val, testA
   and testB (per-expression results and overlays under its work dir);
4. ``results.md`` (a Markdown table) and ``results.png`` (a bar chart of
   PointM / mIoU / oIoU per method and split) in the work dir.

Every step is skipped when its output exists, so an interrupted run
resumes and a second run only rewrites the table. ``--full`` runs the
longer table: longer budgets, plus the from-scratch ("no pretraining"),
calibration-off, step-2 (PRMS on / off) and PCNet rows.

    python tools/toy_benchmark.py                 # about 25 minutes
    python tools/toy_benchmark.py --full          # the longer table
    python tools/toy_benchmark.py --rows tris_pt centre_prior
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SPLITS = ('val', 'testA', 'testB')
CHART_METRICS = ('PointM', 'mIoU', 'oIoU')
TABLE_METRICS = ('PointM', 'PointIt', 'mIoU', 'oIoU', 'Prec@0.5')


@dataclass
class StandIn:
    """A pretrained stand-in: a pretraining config, its budget and the
    exporter that writes the file the toy configs load."""
    name: str
    config: str
    exporter: str
    export: str
    iters: Dict[str, int]  # budget per mode ('default', 'full')
    options: Sequence[str] = ()
    export_args: Sequence[str] = ()


@dataclass
class Row:
    """One row of the table: a config trained for ``iters[mode]``
    iterations (None: evaluation only), or evaluated from another row's
    checkpoint (``checkpoint_of``)."""
    name: str
    label: str
    config: str
    iters: Dict[str, Optional[int]]
    modes: Sequence[str] = ('default', 'full')
    options: Sequence[str] = ()
    test_options: Sequence[str] = ()
    checkpoint_of: Optional[str] = None
    needs: Sequence[str] = ()
    prepare: Sequence['Prepare'] = ()


@dataclass
class Prepare:
    """A tool run before a row trains, skipped when ``marker`` exists.
    ``{work}`` (the row's folder), ``{work_dir}`` and ``{ckpt:ROW}`` (the
    final checkpoint of another row) are filled in ``args`` and ``marker``;
    ``after`` names the rows it needs first."""
    args: Sequence[str]
    marker: str
    after: Sequence[str] = ()


WORLD = 'data/toy_world'
STAND_INS = {
    'clip': StandIn(
        'clip', 'configs/pretrain/clip-tiny_1xb64-400it_toycaptions-128x128.py',
        'tools/model_converters/export_clip.py',
        f'{WORLD}/clip-tiny_toycaptions.pth',
        iters=dict(default=400, full=400)),
    'sam': StandIn(
        'sam', 'configs/pretrain/sam-tiny_1xb4-1500it_toymasks-128.py',
        'tools/model_converters/export_sam.py',
        f'{WORLD}/sam-toy_toymasks.pth',
        iters=dict(default=600, full=1500),
        export_args=('--arch', 'vit_toy')),
}

TRIS_STEP2 = 'configs/tris/tris-step2_clip-tiny_1xb32-2k_toyrefer-128x128.py'
PCNET_PT = 'configs/pcnet/pcnet_clip-tiny-toyworld_1xb32-1k_toyrefer-128x128.py'
PPT = 'configs/ppt/ppt_clip-tiny-sam-toy_1xb16-1k_toycurriculum-128x128.py'
PPT_NO_CURRICULUM = \
    'configs/ppt/ppt_clip-tiny-sam-toy_1xb16-1k_toyrefer-128x128.py'
# The curriculum's switch points (15 % and 40 % of 1000 iterations in the
# config) at the same fractions of the row's budget.
CURRICULUM_AT_BUDGET = ('train_dataloader.sampler.schedule.1.begin={at:0.15}',
                        'train_dataloader.sampler.schedule.2.begin={at:0.4}')
TRIS_SCRATCH = 'configs/tris/tris_clip-tiny_1xb32-3k_toyrefer-128x128.py'
TRIS_PT = 'configs/tris/tris_clip-tiny-toyworld_1xb32-1k_toyrefer-128x128.py'
ROWS = [
    Row('centre_prior', 'Centre prior (the floor)',
        'configs/baselines/centerprior_gaussian_1xb32-eval_toyrefer-128x128.py',
        iters=dict(default=None, full=None)),
    Row('tris_scratch', 'TRIS step 1, no pretraining', TRIS_SCRATCH,
        iters=dict(default=1000, full=3000), modes=('full', )),
    Row('tris', 'TRIS step 1 (pretrained CLIP, calibration)', TRIS_PT,
        iters=dict(default=1000, full=3000), needs=('clip', )),
    Row('tris_nocal', 'TRIS step 1 (pretrained CLIP), no calibration',
        TRIS_PT, iters=dict(default=1000, full=3000), needs=('clip', ),
        options=('model.decode_head.loss_cal=None', )),
    Row('ppt', 'PPT (points -> frozen SAM, curriculum)', PPT,
        iters=dict(default=500, full=1000), needs=('clip', 'sam'),
        options=CURRICULUM_AT_BUDGET),
    Row('ppt_naive', 'CLIP peak -> SAM (naive, PPT model)', PPT,
        iters=dict(default=None, full=None), checkpoint_of='ppt',
        needs=('clip', 'sam'), test_options=(
            'model.test_cfg.mask_decoder.type=ResponsePeakSAMDecoder', )),
    Row('ppt_no_neg', 'PPT, no negative points', PPT,
        iters=dict(default=500, full=1000), needs=('clip', 'sam'),
        modes=('full', ), options=CURRICULUM_AT_BUDGET + (
            'model.decode_head.num_negative=0',
            'model.decode_head.loss_neg=None')),
    Row('ppt_no_curriculum', 'PPT, no curriculum', PPT_NO_CURRICULUM,
        iters=dict(default=500, full=1000), needs=('clip', 'sam'),
        modes=('full', )),
    Row('tris_step2', 'TRIS step 2 (PRMS, dense CRF)', TRIS_STEP2,
        iters=dict(default=1000, full=2000), modes=('full', ),
        options=('train_dataloader.dataset.pseudo_label_dir='
                 '{work}/pseudo_labels', ),
        prepare=[Prepare(['tools/generate_pseudo_labels.py', TRIS_PT,
                          '{ckpt:tris}', '--out', '{work}/pseudo_labels'],
                         '{work}/pseudo_labels/index.json',
                         after=('tris', ))]),
    Row('tris_step2_noprms', 'TRIS step 2, no PRMS', TRIS_STEP2,
        iters=dict(default=1000, full=2000), modes=('full', ),
        options=('train_dataloader.dataset.pseudo_label_dir='
                 '{work}/pseudo_labels', ),
        prepare=[Prepare(['tools/generate_pseudo_labels.py', TRIS_PT,
                          '{ckpt:tris}', '--out', '{work}/pseudo_labels',
                          '--no-prms'],
                         '{work}/pseudo_labels/index.json',
                         after=('tris', ))]),
    Row('tris_step2_from_nocal',
        'TRIS step 2 (PRMS, dense CRF), from step 1 without calibration',
        TRIS_STEP2, iters=dict(default=1000, full=2000), modes=('full', ),
        options=('train_dataloader.dataset.pseudo_label_dir='
                 '{work}/pseudo_labels', ),
        prepare=[Prepare(['tools/generate_pseudo_labels.py', TRIS_PT,
                          '{ckpt:tris_nocal}', '--out',
                          '{work}/pseudo_labels'],
                         '{work}/pseudo_labels/index.json',
                         after=('tris_nocal', ))]),
    Row('tris_step2_noprms_from_nocal',
        'TRIS step 2, no PRMS, from step 1 without calibration', TRIS_STEP2,
        iters=dict(default=1000, full=2000), modes=('full', ),
        options=('train_dataloader.dataset.pseudo_label_dir='
                 '{work}/pseudo_labels', ),
        prepare=[Prepare(['tools/generate_pseudo_labels.py', TRIS_PT,
                          '{ckpt:tris_nocal}', '--out',
                          '{work}/pseudo_labels', '--no-prms'],
                         '{work}/pseudo_labels/index.json',
                         after=('tris_nocal', ))]),
    Row('pcnet', 'PCNet (tiny-SAM proposals, CLIP-ranked RaS)', PCNET_PT,
        iters=dict(default=1000, full=3000), needs=('clip', 'sam'),
        modes=('full', ),
        prepare=[
            Prepare(['tools/decompose_phrases.py', PCNET_PT, '--out',
                     'data/toy_refer/phrases.json', '--backend', 'rule',
                     '--no-progress'], 'data/toy_refer/phrases.json'),
            Prepare(['tools/generate_proposals.py', PCNET_PT, '--out',
                     'data/toy_refer/proposals_toy_sam'],
                    'data/toy_refer/proposals_toy_sam/summary.json')]),
]


def call(args: Sequence[str], log: Optional[str] = None) -> None:
    """Run ``python ARGS`` from the repository root; stop on failure."""
    print('$', 'python', ' '.join(args), flush=True)
    start = time.time()
    if log is None:
        subprocess.run([sys.executable, *args], cwd=REPO, check=True)
    else:
        os.makedirs(osp.dirname(log), exist_ok=True)
        with open(log, 'w') as stream:
            result = subprocess.run([sys.executable, *args], cwd=REPO,
                                    stdout=stream, stderr=subprocess.STDOUT)
        if result.returncode:
            with open(log) as stream:
                tail = stream.read()[-3000:]
            raise SystemExit(f'failed (exit {result.returncode}); the end of '
                             f'{log}:\n{tail}')
    print(f'  done in {time.time() - start:.0f} s', flush=True)


def schedule_options(iters: int) -> List[str]:
    """Options that set a config's budget: ``iters`` iterations, the decay
    (the second scheduler) ending there, one validation and one checkpoint
    at the end."""
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.1.end={iters}',
            f'default_hooks.checkpoint.interval={iters}']


def make_data() -> None:
    """The toy referring data, the caption and class corpora (CLIP
    pretraining, PPT's curriculum) and the mask corpus (SAM pretraining);
    each generator resumes an interrupted run."""
    if not osp.isfile(osp.join(REPO, 'data/toy_refer/toyref/refs(synth).p')):
        call(['tools/dataset_converters/make_toy_refer.py',
              '--out', 'data/toy_refer'])
    if not osp.isfile(osp.join(
            REPO, 'data/toy_corpora/classes/instances_val.json')):
        call(['tools/dataset_converters/make_toy_corpora.py', '--out',
              'data/toy_corpora', '--corpora', 'captions', 'classes',
              '--no-progress'])
    # Its settings file is written first: the generator itself skips the
    # finished records.
    call(['tools/dataset_converters/make_toy_masks.py',
          '--out', 'data/toy_masks'])


def settings_of(stand_in: StandIn, iters: int) -> dict:
    return dict(config=stand_in.config, iters=iters,
                options=list(stand_in.options))


def pretrain(stand_in: StandIn, mode: str, work_dir: str) -> None:
    """Train and export ``stand_in`` unless its export was made with the
    same settings (``<export>.json``)."""
    iters = stand_in.iters[mode]
    settings = settings_of(stand_in, iters)
    record = osp.join(REPO, stand_in.export + '.json')
    if osp.isfile(osp.join(REPO, stand_in.export)) and osp.isfile(record):
        with open(record) as f:
            if json.load(f) == settings:
                print(f'== {stand_in.name}: reusing {stand_in.export}')
                return
    work = osp.join(work_dir, 'pretrain', stand_in.name)
    checkpoint = osp.join(work, f'iter_{iters}.pth')
    print(f'== pretraining the tiny {stand_in.name.upper()} '
          f'({iters} iterations; log in {work}/train.log)')
    if not osp.isfile(osp.join(REPO, checkpoint)):
        call(['tools/train.py', stand_in.config, '--work-dir', work,
              '--resume', '--cfg-options', *schedule_options(iters),
              *stand_in.options], log=osp.join(REPO, work, 'train.log'))
    os.makedirs(osp.join(REPO, WORLD), exist_ok=True)
    call([stand_in.exporter, checkpoint, stand_in.export,
          *stand_in.export_args])
    with open(record, 'w') as f:
        json.dump(settings, f)


def newest_metrics(eval_dir: str) -> Optional[dict]:
    files = sorted(glob.glob(osp.join(REPO, eval_dir, '*', '*.json')))
    if not files:
        return None
    with open(files[-1]) as f:
        return json.load(f)


def final_checkpoint(name: str, mode: str, work_dir: str) -> str:
    row = next(r for r in ROWS if r.name == name)
    return osp.join(work_dir, name, f'iter_{row.iters[mode]}.pth')


def fill(text: str, work: str, mode: str, work_dir: str,
         iters: Optional[int] = None) -> str:
    """``text`` with ``{work}``, ``{work_dir}``, ``{ckpt:ROW}`` and
    ``{at:F}`` (the iteration at fraction F of the row's budget)."""
    text = text.replace('{work}', work).replace('{work_dir}', work_dir)
    while '{at:' in text:
        start = text.index('{at:')
        end = text.index('}', start)
        fraction = float(text[start + len('{at:'):end])
        text = text[:start] + str(round(fraction * iters)) + text[end + 1:]
    while '{ckpt:' in text:
        start = text.index('{ckpt:')
        end = text.index('}', start)
        name = text[start + len('{ckpt:'):end]
        text = text[:start] + final_checkpoint(name, mode, work_dir) + \
            text[end + 1:]
    return text


def run_row(row: Row, mode: str, work_dir: str) -> dict:
    """Prepare, train (unless done) and evaluate (unless done) one row."""
    work = osp.join(work_dir, row.name)
    iters = row.iters[mode]
    options = [fill(option, work, mode, work_dir, iters)
               for option in row.options]
    for step in row.prepare:
        if not osp.exists(osp.join(REPO, fill(step.marker, work, mode,
                                              work_dir))):
            print(f'== {row.label}: {step.args[0]}')
            call([fill(arg, work, mode, work_dir) for arg in step.args],
                 log=osp.join(REPO, work, osp.basename(step.args[0]) +
                              '.log'))
    checkpoint = None
    if row.checkpoint_of is not None:
        checkpoint = final_checkpoint(row.checkpoint_of, mode, work_dir)
    elif iters is not None:
        checkpoint = osp.join(work, f'iter_{iters}.pth')
        if not osp.isfile(osp.join(REPO, checkpoint)):
            print(f'== {row.label}: training ({iters} iterations; log in '
                  f'{work}/train.log)')
            call(['tools/train.py', row.config, '--work-dir', work,
                  '--resume', '--cfg-options', *schedule_options(iters),
                  *options], log=osp.join(REPO, work, 'train.log'))
    eval_dir = osp.join(work, 'eval')
    metrics = newest_metrics(eval_dir)
    if metrics is None:
        print(f'== {row.label}: evaluation on {", ".join(SPLITS)}')
        args = ['tools/test.py', row.config]
        if checkpoint is not None:
            args.append(checkpoint)
        args += ['--work-dir', eval_dir, '--out', osp.join(work, 'results'),
                 '--show-dir', osp.join(work, 'vis')]
        call(args + ['--cfg-options',
                     'default_hooks.visualization.interval=50', *options,
                     *row.test_options],
             log=osp.join(REPO, work, 'test.log'))
        metrics = newest_metrics(eval_dir)
    return metrics


def write_table(rows: List[Row], results: Dict[str, dict], mode: str,
                work_dir: str) -> str:
    lines = [f'Toy benchmark ({mode}): metrics on the toy data (%), '
             'at original image resolution.', '']
    header = ['method', 'iters'] + [
        f'{split} {metric}' for split in SPLITS for metric in TABLE_METRICS]
    lines.append('| ' + ' | '.join(header) + ' |')
    lines.append('|' + '---|' * len(header))
    for row in rows:
        metrics = results[row.name]
        iters = row.iters[mode]
        cells = [row.label, '-' if iters is None else str(iters)]
        for split in SPLITS:
            for metric in TABLE_METRICS:
                value = metrics.get(f'{split}/{metric}')
                cells.append('-' if value is None else f'{value:.2f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    text = '\n'.join(lines) + '\n'
    path = osp.join(REPO, work_dir, 'results.md')
    with open(path, 'w') as f:
        f.write(text)
    return path


def write_chart(rows: List[Row], results: Dict[str, dict],
                work_dir: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(CHART_METRICS),
                             figsize=(5 * len(CHART_METRICS), 4.5),
                             sharey=True)
    width = 0.8 / len(rows)
    positions = np.arange(len(SPLITS))
    # One distinct colour per row (tab10 repeats after ten rows).
    palette = 'tab10' if len(rows) <= 10 else 'tab20'
    colours = plt.get_cmap(palette)
    cycle = colours.N
    for ax, metric in zip(axes, CHART_METRICS):
        for i, row in enumerate(rows):
            values = [results[row.name].get(f'{split}/{metric}', 0.0)
                      for split in SPLITS]
            ax.bar(positions + (i - (len(rows) - 1) / 2) * width, values,
                   width, label=row.label, color=colours(i % cycle))
        ax.set_xticks(positions, SPLITS)
        ax.set_title(metric)
        ax.set_ylim(0, 100)
        ax.grid(axis='y', alpha=0.3)
    axes[0].set_ylabel('%')
    fig.legend(*axes[0].get_legend_handles_labels(), loc='lower center',
               ncol=min(len(rows), 3), fontsize=8)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(rows) - 1) // 3), 1, 1))
    path = osp.join(REPO, work_dir, 'results.png')
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--full', action='store_true',
                        help='the longer table (longer budgets, ablations)')
    parser.add_argument('--work-dir', default=None,
                        help='default: work_dirs/toy (work_dirs/toy_full '
                        'with --full)')
    parser.add_argument('--rows', nargs='+', default=None,
                        choices=[row.name for row in ROWS],
                        help='only these rows, of either mode (default: '
                        'all rows of the mode)')
    args = parser.parse_args(argv)
    mode = 'full' if args.full else 'default'
    work_dir = args.work_dir or ('work_dirs/toy_full' if args.full
                                 else 'work_dirs/toy')
    # --rows picks rows of either mode (at this mode's budget).
    rows = [row for row in ROWS if (mode in row.modes if args.rows is None
                                    else row.name in args.rows)]
    needed = {after for row in rows for step in row.prepare
              for after in step.after}
    missing = needed - {row.name for row in rows}
    if missing:
        parser.error(f'the rows {sorted(needed)} need the rows '
                     f'{sorted(missing)} too')
    start = time.time()
    make_data()
    for name in sorted({need for row in rows for need in row.needs}):
        pretrain(STAND_INS[name], mode, work_dir)
    results = {}
    for row in rows:
        results[row.name] = run_row(row, mode, work_dir)
    os.makedirs(osp.join(REPO, work_dir), exist_ok=True)
    table = write_table(rows, results, mode, work_dir)
    chart = write_chart(rows, results, work_dir)
    with open(table) as f:
        print('\n' + f.read())
    print(f'table: {table}\nchart: {chart}\n'
          f'total: {(time.time() - start) / 60:.1f} min')


if __name__ == '__main__':
    main()
