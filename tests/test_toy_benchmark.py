"""tools/toy_benchmark.py (the main job): its caching, placeholders, table
and chart. The job itself runs in tools/run_toy_job.sh (README)."""
import json
import os.path as osp

import pytest

from toy_world import load_tool

bench = load_tool('toy_benchmark.py')


def test_every_row_config_exists_and_rows_are_unique():
    names = [row.name for row in bench.ROWS]
    assert len(names) == len(set(names))
    for row in bench.ROWS:
        assert osp.isfile(osp.join(bench.REPO, row.config)), row.config
        assert set(row.needs) <= set(bench.STAND_INS)
        assert set(row.modes) <= {'default', 'full'}
        for step in row.prepare:
            assert set(step.after) <= set(names)
    for stand_in in bench.STAND_INS.values():
        assert osp.isfile(osp.join(bench.REPO, stand_in.config))
        assert osp.isfile(osp.join(bench.REPO, stand_in.exporter))
    default = [row.name for row in bench.ROWS if 'default' in row.modes]
    assert 'centre_prior' in default and 'tris' in default


def test_placeholders_name_the_other_rows_checkpoints():
    text = bench.fill('{work}/x {ckpt:tris} {work_dir}', 'W/row', 'full', 'W')
    assert text == 'W/row/x W/tris/iter_3000.pth W'
    assert bench.fill('{ckpt:tris}', 'W/row', 'default', 'W') == \
        'W/tris/iter_1000.pth'
    # Curriculum switch points at fractions of the row's budget.
    assert [bench.fill(option, 'W/row', 'default', 'W', 500)
            for option in bench.CURRICULUM_AT_BUDGET] == [
        'train_dataloader.sampler.schedule.1.begin=75',
        'train_dataloader.sampler.schedule.2.begin=200']


def test_budget_options_reach_the_config():
    """The options the job passes to tools/train.py set what they say."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(bench.REPO, bench.PPT))
    options = bench.schedule_options(500) + [
        bench.fill(option, 'W/row', 'default', 'W', 500)
        for option in bench.CURRICULUM_AT_BUDGET]
    from mmengine.config import DictAction
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(
        ['--cfg-options', *options]).cfg_options)
    assert cfg.train_cfg.max_iters == 500
    assert cfg.param_scheduler[1].end == 500
    assert [stage.begin for stage in cfg.train_dataloader.sampler.schedule
            ] == [0, 75, 200]


def test_stand_in_is_reused_only_with_the_same_settings(tmp_path,
                                                        monkeypatch):
    calls = []
    monkeypatch.setattr(bench, 'call',
                        lambda args, log=None: calls.append(list(args)))
    monkeypatch.setattr(bench, 'REPO', str(tmp_path))
    stand_in = bench.STAND_INS['clip']
    export = tmp_path / stand_in.export
    export.parent.mkdir(parents=True)
    export.write_bytes(b'weights')
    (tmp_path / (stand_in.export + '.json')).write_text(json.dumps(
        bench.settings_of(stand_in, stand_in.iters['default'])))
    bench.pretrain(stand_in, 'default', 'work')
    assert calls == []
    # Another budget: trained again (resumable) and exported again.
    monkeypatch.setitem(stand_in.iters, 'default', 7)
    bench.pretrain(stand_in, 'default', 'work')
    assert calls[0][0] == 'tools/train.py' and '--resume' in calls[0]
    assert 'train_cfg.max_iters=7' in calls[0]
    assert calls[1][0] == stand_in.exporter
    assert calls[1][1] == osp.join('work', 'pretrain', 'clip', 'iter_7.pth')
    record = json.loads((tmp_path / (stand_in.export + '.json')).read_text())
    assert record['iters'] == 7


def test_table_and_chart(tmp_path):
    rows = [bench.Row('a', 'Method A', 'x.py', iters=dict(default=None)),
            bench.Row('b', 'Method B', 'y.py', iters=dict(default=10))]
    results = {'a': {f'{s}/{m}': 10.0 for s in bench.SPLITS
                     for m in bench.TABLE_METRICS},
               'b': {'val/PointM': 55.5, 'val/mIoU': 40.25}}
    table = bench.write_table(rows, results, 'default', str(tmp_path))
    lines = open(table).read().splitlines()
    header = [line for line in lines if line.startswith('| method')][0]
    assert header.count('|') == 2 + 3 * len(bench.TABLE_METRICS) + 1
    row_b = [line for line in lines if line.startswith('| Method B')][0]
    assert '| 10 | 55.50 |' in row_b and '40.25' in row_b
    assert row_b.count('| - ') == 3 * len(bench.TABLE_METRICS) - 2
    chart = bench.write_chart(rows, results, str(tmp_path))
    with open(chart, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    from PIL import Image
    width, height = Image.open(chart).size
    assert width > 2 * height > 0


def test_rows_that_need_other_rows_say_so():
    dependent = [row for row in bench.ROWS
                 if any(step.after for step in row.prepare)]
    if not dependent:
        pytest.skip('no row depends on another')
    row = dependent[0]
    with pytest.raises(SystemExit):
        bench.main(['--full', '--rows', row.name])
