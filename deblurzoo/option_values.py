"""Checks of an option file's values before anything is built, read or written.

BasicSR reads an option file with PyYAML and uses its values as they come: a learning rate written ``1e-4`` (YAML 1.1
reads it as a string) fails deep inside torch's optimizer, a negative crop size inside NumPy, ``total_iter: 0`` trains
nothing and saves an untrained network, a negative loss weight trains the network away from the target, an
experiment ``name`` holding ``..`` makes BasicSR archive (rename) a folder outside ``experiments/``, and ``test.py``
without weights scores a randomly initialised network. Here:

- :func:`load_option_file` reads the file as UTF-8 and YAML, refusing duplicate keys (PyYAML keeps the last one
  silently) and naming the file, line and key;
- :func:`check_option_values` checks the type and range of every numeric key BasicSR or deblurzoo's models read
  (learning rates, iterations, frequencies, sizes, batch, workers, loss weights, ...), turning YAML 1.1 number strings
  (``1e-4``, ``5e3``) into numbers, and checks that the names BasicSR builds folders and files from (``name``, dataset
  names, ``val.suffix``) are single plain path components;
- :func:`check_weights`: a test option file must give every network's weights (``path.pretrain_network_<x>``) unless
  it sets ``allow_untrained: true``.

Every message names the key path (``train.optim_g.lr``) and the value.
"""
import math
import re

import yaml


class OptionError(ValueError):
    """An option file whose values cannot be used; the message names the file or key path and the value."""


# ----------------------------------------------------------------------------------------------------------------------
# reading the file
# ----------------------------------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing duplicate mapping keys."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f'duplicate key {key!r} (first on line {seen[key] + 1}); PyYAML would keep only the last',
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_option_file(path):
    """The option file at ``path`` as a dict; :class:`OptionError` naming the file for unreadable, non-UTF-8 or
    non-YAML content, duplicate keys, or a top level that is not a mapping."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as err:
        raise OptionError(f'option file {path!r}: cannot read it ({err.strerror})') from None
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b'\n') + 1
        raise OptionError(f'option file {path!r}: not UTF-8 text (byte {raw[err.start]:#04x} on line {line}); '
                          'save it as UTF-8') from None
    try:
        opt = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f'line {mark.line + 1}, column {mark.column + 1}: ' if mark is not None else ''
        what = ' '.join(str(x) for x in (err.context, err.problem) if x)
        raise OptionError(f'option file {path!r}: {where}{what}') from None
    except yaml.YAMLError as err:
        raise OptionError(f'option file {path!r}: {err}') from None
    if not isinstance(opt, dict):
        raise OptionError(f'option file {path!r}: the top level must be a mapping of keys, got {type(opt).__name__}')
    return opt


# ----------------------------------------------------------------------------------------------------------------------
# value rules
# ----------------------------------------------------------------------------------------------------------------------


def _number(value):
    """``value`` as int/float, accepting YAML 1.1 number strings ('1e-4', '5e3'); None if it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number
    return None


def _bound_text(low, high, low_open, high_open):
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return ' and '.join(parts)


def number(low=None, high=None, low_open=False, high_open=False, integer=False, allow=()):
    """A rule: a number (an integer if ``integer``) within the bounds, or one of the literal values in ``allow``."""
    kind = 'an integer' if integer else 'a number'
    bound = _bound_text(low, high, low_open, high_open)
    expected = f'{kind} {bound}'.strip() + ''.join(f' or {a!r}' for a in allow)

    def check(value):
        if value in allow and not isinstance(value, bool) or (value is None and None in allow):
            return value
        num = _number(value)
        if num is None or not math.isfinite(num):
            raise ValueError(expected)
        if integer:
            if num != int(num):
                raise ValueError(expected)
            num = int(num)
        if low is not None and (num < low or (low_open and num == low)):
            raise ValueError(expected)
        if high is not None and (num > high or (high_open and num == high)):
            raise ValueError(expected)
        return num

    return check


def list_of(rule, length=None):
    """A rule: a list whose every item passes ``rule`` (and of ``length`` items if given)."""

    def check(value):
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            raise ValueError(f'a list of {length or "any number of"} item(s)')
        return [rule(v) for v in value]

    return check


_UNSAFE = re.compile(r'[/\\\x00-\x1f]')


def path_component(value):
    """A rule: a name BasicSR joins into a folder or file path: one plain component (no separator, not '.'/'..')."""
    if value is None:
        return value
    text = str(value)
    if not text.strip() or text in ('.', '..') or _UNSAFE.search(text) or text.startswith('~'):
        raise ValueError('one plain folder/file name: not empty, no "/" or "\\", not "." or "..", no control '
                         'characters (it becomes a folder or file name under experiments/ or results/)')
    return value


def choice(*values):
    """A rule: one of ``values``."""

    def check(value):
        if value not in values:
            raise ValueError('one of ' + ', '.join(repr(v) for v in values))
        return value

    return check


POSITIVE_INT = number(1, integer=True)
NON_NEGATIVE_INT = number(0, integer=True)
POSITIVE = number(0, low_open=True)
NON_NEGATIVE = number(0)

# (key path, rule); '*' matches one key of any name (a dataset phase, an optimizer, a loss)
RULES = (
    ('name', path_component),
    ('num_gpu', number(0, integer=True, allow=('auto', ))),
    ('manual_seed', number(0, integer=True, allow=(None, ))),
    ('scale', POSITIVE_INT),
    ('datasets.*.name', path_component),
    ('datasets.*.batch_size_per_gpu', POSITIVE_INT),
    ('datasets.*.num_worker_per_gpu', NON_NEGATIVE_INT),
    ('datasets.*.gt_size', POSITIVE_INT),
    ('datasets.*.dataset_enlarge_ratio', POSITIVE_INT),
    ('datasets.*.num_frame', POSITIVE_INT),
    ('datasets.*.num_prefetch_queue', POSITIVE_INT),
    ('datasets.*.prefetch_mode', choice(None, 'cpu', 'cuda')),
    ('train.total_iter', POSITIVE_INT),
    ('train.warmup_iter', number(-1, integer=True)),
    ('train.ema_decay', number(0, 1, high_open=True)),
    ('train.optim_*.lr', NON_NEGATIVE),  # 0: validate fixed weights through the training loop
    ('train.optim_*.weight_decay', NON_NEGATIVE),
    ('train.optim_*.eps', POSITIVE),
    ('train.optim_*.momentum', NON_NEGATIVE),
    ('train.optim_*.betas', list_of(number(0, 1, high_open=True), length=2)),
    ('train.scheduler.milestones', list_of(NON_NEGATIVE_INT)),
    ('train.scheduler.periods', list_of(POSITIVE_INT)),
    ('train.scheduler.restart_weights', list_of(NON_NEGATIVE)),
    ('train.scheduler.gamma', POSITIVE),
    ('train.scheduler.eta_min', NON_NEGATIVE),
    ('train.scheduler.power', POSITIVE),
    ('train.scheduler.total_iter', POSITIVE_INT),
    ('train.*.loss_weight', NON_NEGATIVE),
    ('train.nan_skip_limit', NON_NEGATIVE_INT),
    ('train.dcn_lr_mul', POSITIVE),
    ('val.val_freq', POSITIVE_INT),
    ('val.suffix', path_component),
    ('logger.print_freq', POSITIVE_INT),
    ('logger.save_checkpoint_freq', POSITIVE_INT),
    ('dist_params.port', number(1, 65535, integer=True)),
)


def _matches(opt, pattern, prefix=()):
    """Yield (key path tuple, parent dict, key) for every existing key matching ``pattern`` (a tuple of names/'*')."""
    head, rest = pattern[0], pattern[1:]
    if not isinstance(opt, dict):
        return
    keys = [k for k in opt if isinstance(k, str) and (head == '*' or k == head or
                                                       (head.endswith('*') and k.startswith(head[:-1])))]
    for key in keys:
        if rest:
            yield from _matches(opt[key], rest, prefix + (key, ))
        else:
            yield prefix + (key, ), opt, key


def check_value(name, value, rule):
    """``rule(value)`` (the value, YAML 1.1 number strings read as numbers); for a class or function that takes one
    option itself (a dataset, a model), outside the entry points' :func:`check_option_values`.

    Raises:
        ValueError: ``'<name> must be <what the rule wants>, got <value>'``.
    """
    try:
        return rule(value)
    except ValueError as err:
        raise ValueError(f'{name} must be {err}, got {value!r}') from None


def check_option_values(opt, rules=RULES):
    """Check ``opt`` (a parsed option dict) against ``rules`` in place; YAML 1.1 number strings become numbers.

    Raises:
        OptionError: naming every bad key path with its value and what it must be.
    """
    problems = []
    for pattern, rule in rules:
        for path, parent, key in _matches(opt, tuple(pattern.split('.'))):
            try:
                parent[key] = rule(parent[key])
            except ValueError as err:
                problems.append(f"{'.'.join(path)}: {parent[key]!r} must be {err}")
    if problems:
        raise OptionError('option values out of type or range:\n  ' + '\n  '.join(problems))
    return opt


def check_weights(opt):
    """A test/inference option file (``is_train`` false) names every network's weights.

    Each ``network_<x>`` needs ``path.pretrain_network_<x>``; ``allow_untrained: true`` at the top level evaluates
    randomly initialised networks on purpose (e.g. to time them).

    Raises:
        OptionError: naming the missing ``path.pretrain_network_<x>`` keys.
    """
    if opt.get('allow_untrained') is True:
        return
    paths = opt.get('path') or {}
    missing = [f'path.pretrain_{key}' for key in opt if isinstance(key, str) and key.startswith('network_')
               and not paths.get(f'pretrain_{key}')]
    if missing:
        raise OptionError(f"{', '.join(missing)} not set: testing would score randomly initialised weights; give the "
                          'trained checkpoint(s), or set allow_untrained: true to evaluate an untrained network')
