"""scripts/bench_data.py in its tiny mode: every registered training dataset is read through BasicSR's loader (disk,
and LMDB for GoPro and DVD; with and without ``prefetch_mode: cpu``, 0 and 1 workers), beside a training step, and the
verdict follows the numbers."""
import json

import pytest

from data_factory import load_script
from test_registry import DATASET_CASES


def test_tiny_mode_reads_every_training_dataset_and_names_the_bottleneck(tmp_path, capsys):
    bench = load_script('bench_data')
    report = bench.main(['--tiny', '--workers', '0', '1', '--batches', '2', '--steps', '1', '--prefetch', 'none',
                         'cpu', '--device', 'cpu', '--json', str(tmp_path / 'r.json')])
    assert json.loads((tmp_path / 'r.json').read_text())['bottleneck'] == report['bottleneck']
    labels = {row['dataset'] for row in report['loaders']}
    training = {name for name, cases in DATASET_CASES.items() if 'Test' not in name}
    assert labels >= {f'{name} (disk)' for name in training} | {'GoProDataset (lmdb)', 'DVDDataset (lmdb)'}, labels
    for label in labels:
        settings = {(r['workers'], r['prefetch']) for r in report['loaders'] if r['dataset'] == label}
        assert settings == {(0, 'none'), (0, 'cpu'), (1, 'none'), (1, 'cpu')}, (label, settings)
    assert all(r['samples_per_s'] > 0 for r in report['loaders']) and report['step_samples_per_s'] > 0
    best = report['best_loader']
    assert best['dataset'].startswith('GoProDataset')  # the demo SVDN option's dataset
    assert report['bottleneck'] == ('the loader' if best['samples_per_s'] < report['step_samples_per_s'] else
                                    'the training step')
    assert 'bottleneck:' in capsys.readouterr().out


def test_a_bad_option_file_is_a_usage_error_naming_the_file(tmp_path, capsys):
    """The option file is read as the entry points read it: a duplicate key is refused with its line, not kept."""
    bench = load_script('bench_data')
    option_file = tmp_path / 'train_dup.yml'
    option_file.write_text('name: x\nname: y\n')
    with pytest.raises(SystemExit) as caught:
        bench.main(['-opt', str(option_file), '--device', 'cpu'])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert 'train_dup.yml' in err and "line 2, column 1: duplicate key 'name' (first on line 1)" in err
