"""Reports of the measuring scripts never replace a file of the user's, and their arguments are checked before the
measuring: ``output_guard.check_report_targets``/``refuse_overlap``/``write_report``, and their use by benchmark.py,
bench_deform.py, bench_sampling.py, bench_data.py, model_cost.py, demo_report.py and gpu_check.py (``--vendor``)."""
import json
import os
import subprocess
import sys

import pytest

from data_factory import REPO_ROOT, load_script, make_gopro_tree
from deblurzoo.data import output_guard

README = '# my notes\n\nkept for years\n'


# ---------------------------------------------------------------------------------------------------- the checks
def test_a_new_report_and_an_earlier_one_may_be_written(tmp_path):
    out = tmp_path / 'deep' / 'er' / 'bench'
    paths = [f'{out}.json', f'{out}.md']
    output_guard.check_report_targets(paths, '--out')  # missing folders are made when writing
    output_guard.write_report(paths[0], '{"a": 1}')
    output_guard.write_report(paths[1], '# report\n')
    output_guard.check_report_targets(paths, '--out')  # an earlier run's pair: replaced
    assert json.loads((tmp_path / 'deep' / 'er' / 'bench.json').read_text()) == {'a': 1}


@pytest.mark.parametrize('case', ['folder', 'not json', 'text without its json', 'text beside a non-json',
                                  'under a file', 'an input', 'a hard link to an input'])
def test_what_is_refused_names_the_option_and_the_file(tmp_path, case):
    readme, notes = tmp_path / 'README.md', tmp_path / 'notes.json'
    readme.write_text(README)
    notes.write_text('not JSON at all')
    paths, inputs = [str(tmp_path / 'out.json'), str(tmp_path / 'out.md')], []
    if case == 'folder':
        (tmp_path / 'out.json').mkdir()
    elif case == 'not json':
        paths = [str(notes)]
    elif case == 'text without its json':
        paths = [str(tmp_path / 'README.json'), str(readme)]
    elif case == 'text beside a non-json':
        paths = [str(notes), str(tmp_path / 'notes.md')]
        (tmp_path / 'notes.md').write_text('# mine\n')
    elif case == 'under a file':
        paths = [str(readme / 'x.json')]
    elif case == 'an input':
        (tmp_path / 'out.json').write_text('{}')
        inputs = [str(tmp_path / 'out.json')]
    else:
        (tmp_path / 'model.json').write_text('{}')
        os.link(tmp_path / 'model.json', tmp_path / 'out.json')
        inputs = [str(tmp_path / 'model.json')]
    with pytest.raises(ValueError, match='--opt-name') as err:
        output_guard.check_report_targets(paths, '--opt-name', inputs)
    assert str(tmp_path) in str(err.value)
    assert readme.read_text() == README and notes.read_text() == 'not JSON at all'


def test_overlapping_folders_are_refused_both_ways(tmp_path):
    data = tmp_path / 'data'
    (data / 'seq').mkdir(parents=True)
    for out in (data, data / 'seq' / 'report', tmp_path):
        with pytest.raises(ValueError, match='overlap'):
            output_guard.refuse_overlap(str(out), str(data), '--out', '--dataroot')
    os.symlink(data, tmp_path / 'link')
    with pytest.raises(ValueError, match='overlap'):
        output_guard.refuse_overlap(str(tmp_path / 'link' / 'r'), str(data), '--out', '--dataroot')
    output_guard.refuse_overlap(str(tmp_path / 'results'), str(data), '--out', '--dataroot')


# -------------------------------------------------------------------------------------------------- the scripts
def _usage_error(capsys, call):
    with pytest.raises(SystemExit) as exit_:
        call()
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_benchmark_refuses_a_report_path_over_a_users_file_before_measuring(tmp_path, capsys):
    readme = tmp_path / 'README.md'
    readme.write_text(README)
    bench = load_script('benchmark')
    err = _usage_error(capsys, lambda: bench.main(['--archs', 'SVDN', '--skip-latency', '--out',
                                                   str(tmp_path / 'README')]))
    assert 'README.md exists and is not a report' in err
    assert readme.read_text() == README and not (tmp_path / 'README.json').exists()


@pytest.mark.parametrize('script,argv', [
    ('bench_deform', ['--shapes', '1x4x8x8', '--offset-groups', '1', '--repeats', '1']),
    ('bench_sampling', ['--sizes', '32x32', '--train-sizes', '32x32', '--repeats', '1']),
])
def test_bench_json_over_a_users_file_is_refused_before_measuring(script, argv, tmp_path, capsys):
    mine = tmp_path / 'train.yml'
    mine.write_text('name: mine\n')
    err = _usage_error(capsys, lambda: load_script(script).main(argv + ['--json', str(mine)]))
    assert '--json' in err and str(mine) in err and mine.read_text() == 'name: mine\n'


def test_bench_data_json_is_not_its_option_file(tmp_path, capsys):
    opt = tmp_path / 'opt.json'  # JSON is YAML: an option file may be JSON
    opt.write_text('{"name": "x"}')
    err = _usage_error(capsys, lambda: load_script('bench_data').main(['-opt', str(opt), '--json', str(opt)]))
    assert 'is an input' in err and opt.read_text() == '{"name": "x"}'


@pytest.mark.parametrize('script,argv,message', [
    ('model_cost', ['--arch', 'SVDM'], "Unknown type 'SVDM' in the 'arch' registry (did you mean 'SVDN'?)"),
    ('model_cost', ['--arch', 'SVDN', '--kwargs', '{bad'], '--kwargs: not valid JSON'),
    ('model_cost', ['--arch', 'SVDN', '--kwargs', '[1]'], '--kwargs: a JSON object of constructor arguments'),
    ('model_cost', ['--arch', 'SVDN', '--kwargs', '{"num_fet": 8}'],
     "unknown key(s) 'num_fet' (did you mean 'num_feat'?)"),
    ('model_cost', ['--arch', 'SVDN', '--size', '0', '8'], '--size and --frames must be at least 1'),
    ('bench_sampling', ['--kwargs', '{"nope": 1}'], "--kwargs (SAPHNet): unknown key(s) 'nope'"),
    ('bench_sampling', ['--sizes', '8xq'], "size '8xq': write WIDTHxHEIGHT"),
    ('bench_sampling', ['--repeats', '0'], '--repeats and --threads must be at least 1'),
    ('bench_sampling', ['--device', 'bogus'], '--device: '),
    ('bench_deform', ['--shapes', '0x4x8x8'], "b,c,h,w (positive integers); got '0x4x8x8'"),
    ('bench_deform', ['--shapes', '1x4x8x8', '--offset-groups', '3'], '--offset-groups: 3 does not divide 4 channels'),
    ('bench_deform', ['--repeats', '0'], 'must be at least 1'),
    ('bench_data', ['--tiny', '--steps', '0'], '--batches and --steps at least 1'),
    ('bench_data', ['--tiny', '--device', 'bogus'], '--device: '),
    ('gpu_check', ['--device', 'bogus'], '--device bogus: '),
    ('gpu_check', ['--limits', 'train=x'], '--limits train=x: write SECTION=SECONDS'),
    ('gpu_check', ['--repeats', '0'], '--repeats must be at least 1'),
])
def test_bad_arguments_of_the_measuring_scripts_are_usage_errors(script, argv, message, tmp_path, capsys):
    argv = argv + (['--out', str(tmp_path / 'report')] if script == 'gpu_check' else [])
    assert message in _usage_error(capsys, lambda: load_script(script).main(argv))


def test_demo_report_never_writes_among_the_data(tmp_path, capsys):
    root = tmp_path / 'demo'
    make_gopro_tree(str(root), 'test', frames=2, size=(16, 16))
    before = sorted(p for p in root.rglob('*'))
    err = _usage_error(capsys, lambda: load_script('demo_report').main(
        ['--dataroot', str(root), '--results', str(tmp_path / 'r'), '--out', str(root / 'report')]))
    assert '--out' in err and 'overlap' in err and sorted(p for p in root.rglob('*')) == before


def test_gpu_check_vendor_replaces_only_its_own_copy(tmp_path):
    def vendor(folder):
        return subprocess.run([sys.executable, 'scripts/gpu_check.py', '--vendor', str(folder)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300)

    site = tmp_path / 'site'
    first = vendor(site)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (site / 'basicsr' / '__init__.py').is_file() and (site / 'distutils').is_dir()
    (site / 'basicsr' / 'stale.py').write_text('')
    again = vendor(site)  # our own copy: replaced by a fresh one, no scratch folder left
    assert again.returncode == 0, again.stderr[-2000:]
    assert not (site / 'basicsr' / 'stale.py').exists()
    assert sorted(p.name for p in site.iterdir()) == ['.gpu_check_vendor.json', 'basicsr', 'distutils']

    home = tmp_path / 'home'  # a folder of the user's holding their own basicsr checkout
    (home / 'basicsr').mkdir(parents=True)
    (home / 'basicsr' / 'my_fix.py').write_text('x = 1\n')
    refused = vendor(home)
    assert refused.returncode == 2 and 'not made by --vendor' in refused.stderr
    assert (home / 'basicsr' / 'my_fix.py').read_text() == 'x = 1\n' and sorted(os.listdir(home)) == ['basicsr']
