"""Bad option values stop ``deblurzoo/train.py`` and ``test.py`` before anything is built, read or written: the error
names the key path and value, and no folder is created or archived (a ``name`` with ``..`` would make BasicSR rename a
folder outside ``experiments/``)."""
import os
import os.path as osp

import pytest
import yaml

from train_runner import _copy_entry_points, _run, _write

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('optcheck')
    _copy_entry_points(root)
    os.makedirs(root / 'datasets' / 'keep')
    (root / 'datasets' / 'keep' / 'image.png').write_bytes(b'user data')
    return root


def _opt(kind):
    with open(osp.join(REPO, 'options', 'demo', f'{kind}_svdn_demo.yml')) as f:
        return yaml.safe_load(f)


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files + ['.'])


@pytest.mark.parametrize('kind,change,expected', [
    ('train', {'name': '../datasets/keep'}, "name: '../datasets/keep' must be one plain folder/file name"),
    ('train', {'train.total_iter': 0}, 'train.total_iter: 0 must be an integer >= 1'),
    ('train', {'train.optim_g.lr': 'le-4'}, "train.optim_g.lr: 'le-4' must be a number >= 0"),
    ('train', {'datasets.train.gt_size': -64}, 'datasets.train.gt_size: -64 must be an integer >= 1'),
    ('test', {'path.pretrain_network_g': None}, 'path.pretrain_network_g not set'),
])
def test_bad_values_stop_the_entry_point_before_any_write(root, kind, change, expected):
    opt = _opt(kind)
    for dotted, value in change.items():
        *parents, last = dotted.split('.')
        node = opt
        for key in parents:
            node = node[key]
        node[last] = value
    opt_path = _write(root, opt, f'bad_{kind}.yml')
    before = _tree(root)
    run = _run(root, f'deblurzoo/{kind}.py', '-opt', opt_path, timeout=120)
    assert run.returncode != 0
    assert expected in run.stderr, run.stderr[-3000:]
    assert _tree(root) == before  # no experiments/, results/, tb_logger/ folder; nothing renamed
    assert (root / 'datasets' / 'keep' / 'image.png').read_bytes() == b'user data'


def test_yaml11_learning_rate_trains_as_a_number(root):
    """``lr: 1e-4`` (a string to PyYAML) is read as the number it means: parsing succeeds and the run gets past the
    option checks (it stops later, at the missing dataset, naming the folder)."""
    opt = _opt('train')
    opt['train']['optim_g']['lr'] = '1e-4'
    opt['name'] = 'yaml11_lr'
    for phase in ('train', 'val'):
        opt['datasets'][phase]['dataroot'] = str(root / 'no_such_dataset')
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, opt, 'yaml11.yml'), timeout=120)
    assert 'train.optim_g.lr' not in run.stderr
    assert 'no_such_dataset' in run.stderr, run.stderr[-3000:]
