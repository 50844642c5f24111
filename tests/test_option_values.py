"""Option values: types, ranges, YAML 1.1 numbers, duplicate keys, encodings, folder names, untrained networks."""
import copy
import glob
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deblurzoo.option_values import (POSITIVE, OptionError, check_option_values, check_value, check_weights,
                                     load_option_file)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(glob.glob(os.path.join(ROOT, 'options', '**', '*.yml'), recursive=True))

BASE = {
    'name': 'run', 'num_gpu': 'auto', 'manual_seed': 10, 'scale': 1,
    'datasets': {'train': {'name': 'GoPro', 'batch_size_per_gpu': 4, 'num_worker_per_gpu': 2, 'gt_size': 256},
                 'val': {'name': 'GoPro_test'}},
    'network_g': {'type': 'SVDN'},
    'train': {'total_iter': 1000, 'warmup_iter': -1, 'ema_decay': 0.999,
              'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
              'scheduler': {'type': 'MultiStepLR', 'milestones': [500], 'gamma': 0.5},
              'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
    'val': {'val_freq': 100},
    'logger': {'print_freq': 10, 'save_checkpoint_freq': 100},
}


def with_value(path, value):
    opt = copy.deepcopy(BASE)
    *parents, last = path.split('.')
    node = opt
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return opt


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_shipped_option_file_passes(path):
    opt = load_option_file(path)
    check_option_values(opt)


def test_yaml11_number_strings_become_numbers():
    opt = check_option_values(with_value('train.optim_g.lr', '1e-4'))
    assert opt['train']['optim_g']['lr'] == pytest.approx(1e-4) and isinstance(opt['train']['optim_g']['lr'], float)
    opt = check_option_values(with_value('val.val_freq', '5e3'))
    assert opt['val']['val_freq'] == 5000 and isinstance(opt['val']['val_freq'], int)
    opt = check_option_values(with_value('logger.save_checkpoint_freq', 5e3))  # !!float 5e3 as BasicSR writes it
    assert opt['logger']['save_checkpoint_freq'] == 5000 and isinstance(opt['logger']['save_checkpoint_freq'], int)


@pytest.mark.parametrize('path,value,expected', [
    ('train.optim_g.lr', '1e-4x', 'a number >= 0'),
    ('train.optim_g.lr', -1e-4, 'a number >= 0'),
    ('train.optim_g.lr', True, 'a number >= 0'),
    ('train.optim_g.betas', [0.9], 'a list of 2'),
    ('train.optim_g.betas', [0.9, 1.0], '< 1'),
    ('datasets.train.gt_size', -256, 'an integer >= 1'),
    ('datasets.train.gt_size', 255.5, 'an integer >= 1'),
    ('datasets.train.batch_size_per_gpu', 0, 'an integer >= 1'),
    ('datasets.train.num_worker_per_gpu', -1, 'an integer >= 0'),
    ('train.total_iter', 0, 'an integer >= 1'),
    ('train.pixel_opt.loss_weight', -1.0, 'a number >= 0'),
    ('train.pixel_opt.loss_weight', float('nan'), 'a number >= 0'),
    ('train.ema_decay', 1.0, '< 1'),
    ('train.scheduler.milestones', [100, -5], 'an integer >= 0'),
    ('logger.print_freq', 0, 'an integer >= 1'),
    ('val.val_freq', 'often', 'an integer >= 1'),
    ('num_gpu', -1, "or 'auto'"),
    ('datasets.train.prefetch_mode', 'gpu', "one of None, 'cpu', 'cuda'"),
])
def test_bad_values_name_the_key_path_and_value(path, value, expected):
    with pytest.raises(OptionError) as err:
        check_option_values(with_value(path, value))
    message = str(err.value)
    assert f'{path}: {value!r}' in message and expected in message


def test_every_problem_is_reported_at_once():
    opt = with_value('train.total_iter', 0)
    opt['train']['optim_g']['lr'] = 'fast'
    with pytest.raises(OptionError) as err:
        check_option_values(opt)
    assert 'train.total_iter: 0' in str(err.value) and "train.optim_g.lr: 'fast'" in str(err.value)


@pytest.mark.parametrize('path', ['name', 'datasets.val.name', 'val.suffix'])
@pytest.mark.parametrize('value', ['..', '.', '../datasets', 'a/b', 'a\\b', '', '   ', '~user', 'x\x00y', '/abs'])
def test_folder_and_file_names_stay_one_plain_component(path, value):
    with pytest.raises(OptionError, match=path.replace('.', r'\.')):
        check_option_values(with_value(path, value))


@pytest.mark.parametrize('value', ['SVDN_GoPro', 'debug_x', 'run.v2', 'ünïcode name', 'a..b'])
def test_plain_names_pass(value):
    assert check_option_values(with_value('name', value))['name'] == value


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                 st.booleans(), st.none(), st.lists(st.integers(), max_size=3)))
def test_generated_learning_rates_are_accepted_only_when_non_negative_finite_numbers(value):
    opt = with_value('train.optim_g.lr', value)
    try:
        lr = float(value.strip()) if isinstance(value, str) else value
    except ValueError:
        lr = None
    good = (not isinstance(value, (bool, list, type(None))) and lr is not None and lr == lr and lr >= 0
            and lr != float('inf'))
    if good:
        assert check_option_values(opt)['train']['optim_g']['lr'] == pytest.approx(lr)
    else:
        with pytest.raises(OptionError, match='train.optim_g.lr'):
            check_option_values(opt)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=12))
def test_generated_names_never_leave_the_experiments_folder(name):
    opt = with_value('name', name)
    try:
        check_option_values(opt)
    except OptionError:
        return
    root = os.path.join('/x', 'experiments')
    assert os.path.dirname(os.path.normpath(os.path.join(root, os.path.expanduser(name)))) == root


def test_duplicate_keys_are_refused_with_their_lines(tmp_path):
    path = tmp_path / 'dup.yml'
    path.write_text('name: a\ntrain:\n  total_iter: 10\n  total_iter: 20\n')
    expected = r"dup\.yml': line 4, column 3: duplicate key 'total_iter' \(first on line 3\)"
    with pytest.raises(OptionError, match=expected):
        load_option_file(str(path))


def test_non_utf8_option_file_is_named(tmp_path):
    path = tmp_path / 'latin1.yml'
    path.write_bytes('name: caf\xe9\n'.encode('latin-1'))
    with pytest.raises(OptionError, match=r'latin1\.yml.*not UTF-8.*0xe9 on line 1'):
        load_option_file(str(path))


@pytest.mark.parametrize('text,expected', [('- a\n- b\n', 'must be a mapping'), ('a: [1\n', 'option file'),
                                           ('', 'must be a mapping')])
def test_broken_yaml_is_named(tmp_path, text, expected):
    path = tmp_path / 'bad.yml'
    path.write_text(text)
    with pytest.raises(OptionError, match=expected):
        load_option_file(str(path))


def test_missing_option_file_is_named(tmp_path):
    with pytest.raises(OptionError, match='nope.yml.*cannot read'):
        load_option_file(str(tmp_path / 'nope.yml'))


def test_testing_without_weights_is_refused_unless_asked():
    opt = {'network_g': {'type': 'SVDN'}, 'path': {'pretrain_network_g': None}}
    with pytest.raises(OptionError, match='path.pretrain_network_g not set'):
        check_weights(opt)
    check_weights({**opt, 'allow_untrained': True})
    check_weights({'network_g': {}, 'path': {'pretrain_network_g': 'net.pth'}})
    two_stage = {'network_g': {}, 'network_stage1': {}, 'path': {'pretrain_network_g': 'g.pth'}}
    with pytest.raises(OptionError, match='path.pretrain_network_stage1'):
        check_weights(two_stage)


@pytest.mark.parametrize('path', [p for p in SHIPPED if os.path.basename(p).startswith('test_')],
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_every_shipped_test_option_names_its_weights(path):
    check_weights(load_option_file(path))


def test_check_value_reads_number_strings_and_names_the_key_and_value():
    assert check_value('train.x', '1e-3', POSITIVE) == 1e-3
    with pytest.raises(ValueError, match=r"^train\.x must be a number > 0, got -1$"):
        check_value('train.x', -1, POSITIVE)
