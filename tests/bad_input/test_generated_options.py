"""Generated option files (Hypothesis): every numeric key deblurzoo checks, given values of every YAML kind, is
accepted exactly when it is a finite number in its range (an integer where one is needed; YAML 1.1 number strings
such as ``1e-4`` count as numbers), and refused naming the key path and the value; duplicate keys at any depth and
bytes that are not UTF-8 anywhere in the file are refused naming the file.

The oracle here is written from the rules' meaning, not from ``deblurzoo/option_values.py``'s code.
"""
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deblurzoo.option_values import OptionError, check_option_values, load_option_file

SOME = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

BASE = {
    'name': 'run',
    'datasets': {'train': {'name': 'GoPro', 'batch_size_per_gpu': 4, 'num_worker_per_gpu': 2, 'gt_size': 256}},
    'network_g': {'type': 'SVDN'},
    'train': {'total_iter': 1000, 'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'eps': 1e-8},
              'scheduler': {'type': 'MultiStepLR', 'milestones': [500], 'gamma': 0.5},
              'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, 'nan_skip_limit': 3},
    'val': {'val_freq': 100},
    'logger': {'print_freq': 10, 'save_checkpoint_freq': 100},
}

# key path: (lowest value, whether the lowest is excluded, integer)
NUMERIC = {
    'datasets.train.batch_size_per_gpu': (1, False, True),
    'datasets.train.num_worker_per_gpu': (0, False, True),
    'datasets.train.gt_size': (1, False, True),
    'train.total_iter': (1, False, True),
    'train.nan_skip_limit': (0, False, True),
    'val.val_freq': (1, False, True),
    'logger.print_freq': (1, False, True),
    'logger.save_checkpoint_freq': (1, False, True),
    'train.optim_g.lr': (0, False, False),
    'train.optim_g.weight_decay': (0, False, False),
    'train.optim_g.eps': (0, True, False),
    'train.scheduler.gamma': (0, True, False),
    'train.pixel_opt.loss_weight': (0, False, False),
}

# scalars as written in a YAML file, read with YAML 1.1's rules ('1e-4' is a string there, '0x10' an integer)
RAW = st.sampled_from(['1e-4', '5e3', '1.5e2', '0x10', '0o17', '1_000', '.inf', '-.inf', '.nan', 'yes', 'off', '~',
                       '[1, 2]', '{a: 1}', '0', '-1', '-0.0', '2.5', '"3"', "' 7 '", '"abc"', '1e400', '3.0', '-2'])
VALUES = st.one_of(st.integers(-10, 10**7), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                   st.booleans(), st.none(), st.lists(st.integers(0, 3), max_size=2))


def _expected(value, low, low_open, integer):
    """The number ``value`` (as parsed from the YAML file) stands for if the rule accepts it, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        num = float(value.strip()) if isinstance(value, str) else value
    except ValueError:
        return None
    if not math.isfinite(num) or (integer and num != int(num)) or num < low or (low_open and num == low):
        return None
    return int(num) if integer else num


def _write(tmp_path, path, value=None, raw=None):
    opt = yaml.safe_load(yaml.safe_dump(BASE))
    *parents, last = path.split('.')
    node = opt
    for key in parents:
        node = node[key]
    node[last] = 'VALUE_PLACEHOLDER' if raw is not None else value
    text = yaml.safe_dump(opt, sort_keys=False)
    if raw is not None:
        text = text.replace('VALUE_PLACEHOLDER', raw)
    (tmp_path / 'opt.yml').write_text(text)
    return tmp_path / 'opt.yml'


@SOME
@given(path=st.sampled_from(sorted(NUMERIC)), value=VALUES, raw=st.one_of(st.none(), RAW))
def test_generated_numeric_values_are_accepted_only_in_range(tmp_path, path, value, raw):
    opt = load_option_file(str(_write(tmp_path, path, value, raw)))
    parsed = opt
    for key in path.split('.'):
        parsed = parsed[key]  # the value as YAML read it
    expected = _expected(parsed, *NUMERIC[path])
    if expected is not None:
        checked = check_option_values(opt)
        for key in path.split('.'):
            checked = checked[key]
        assert checked == pytest.approx(expected)
        assert type(checked) is int or not NUMERIC[path][2]  # an integer key gets an int (a YAML '5e3' too)
    else:
        with pytest.raises(OptionError) as info:
            check_option_values(opt)
        assert f'{path}: {parsed!r} must be' in str(info.value)


KEYS = st.text(alphabet='abcdefgh_', min_size=1, max_size=5)


@SOME
@given(depth=st.integers(0, 3), key=KEYS, values=st.tuples(st.integers(), st.integers()))
def test_a_duplicate_key_at_any_depth_is_refused_naming_it(tmp_path, depth, key, values):
    indent = '  ' * depth
    text = ''.join(f'{"  " * i}level{i}:\n' for i in range(depth))
    text += f'{indent}{key}: {values[0]}\n{indent}other: 1\n{indent}{key}: {values[1]}\n'
    (tmp_path / 'dup.yml').write_text(text)
    with pytest.raises(OptionError) as info:
        load_option_file(str(tmp_path / 'dup.yml'))
    message = str(info.value)
    assert str(tmp_path / 'dup.yml') in message and f'duplicate key {key!r}' in message
    assert f'line {depth + 3}' in message


@SOME
@given(at=st.floats(0, 1), byte=st.integers(0x80, 0xFF))
def test_bytes_that_are_not_utf8_anywhere_are_refused_naming_the_file_and_line(tmp_path, at, byte):
    text = yaml.safe_dump(BASE, sort_keys=False).encode()
    cut = int(at * len(text))
    data = text[:cut] + bytes([byte]) + text[cut:]  # a lone byte >= 0x80 is never valid UTF-8
    (tmp_path / 'latin.yml').write_bytes(data)
    with pytest.raises(OptionError) as info:
        load_option_file(str(tmp_path / 'latin.yml'))
    message = str(info.value)
    line = data[:cut].count(b'\n') + 1
    assert str(tmp_path / 'latin.yml') in message and f'not UTF-8 text (byte {byte:#04x} on line {line})' in message
