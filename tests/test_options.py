"""Every shipped option file under options/ loads, names registered types, builds its losses, optimizer, scheduler
and network exactly as written, and runs that network on a tiny input. New YAML files are picked up automatically.
Dataset option keys are checked against the keys each dataset accepts (``OPTION_KEYS``), so a misspelled key in a
shipped YAML fails here, as it would when the dataset is built.
"""
import copy
import functools
from pathlib import Path

import pytest
import torch
import yaml

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.losses import build_loss
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
from deblurzoo.data.data_util import BASICSR_DATASET_KEYS
from deblurzoo.models.deblur_model import OPTIMIZERS, SCHEDULERS
from arch_inputs import expected_shape, make_input

REPO = Path(__file__).resolve().parents[1]
OPTIONS = REPO / 'options'
FILES = sorted(p.relative_to(REPO).as_posix() for p in OPTIONS.glob('**/*.yml'))
PREFIXES = ('train_', 'test_')
# the only override: no ImageNet VGG16 weights exist on test machines
LOSS_OVERRIDES = {'VGGPerceptualLoss': {'pretrained': False}}


@functools.lru_cache(maxsize=None)
def _load_cached(rel):
    with open(REPO / rel) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def _load(rel):
    opt = copy.deepcopy(_load_cached(rel))
    assert isinstance(opt, dict), f'{rel}: not a mapping at the top level'
    return opt


def _is_deblurzoo(registry, name):
    return registry.get(name).__module__.startswith('deblurzoo')


def _known(registry, name, where):
    assert name in registry._obj_map, (f"{where}: type '{name}' is not registered in BasicSR's {registry._name} "
                                       f'registry; registered: {sorted(registry._obj_map)}')


def test_options_exist():
    assert FILES, f'no option files under {OPTIONS}'


def test_no_yaml_extension():
    """Only ``*.yml`` files are tested; a ``*.yaml`` file would slip through."""
    stray = sorted(p.relative_to(REPO).as_posix() for p in OPTIONS.glob('**/*.yaml'))
    assert not stray, f'rename to .yml (or they are never tested): {stray}'


# ------------------------------------------------------------------------------------------------- content


@pytest.mark.parametrize('rel', FILES)
def test_types_are_registered(rel):
    opt = _load(rel)
    assert opt.get('name'), f'{rel}: no name'
    assert opt.get('model_type'), f'{rel}: no model_type'
    _known(MODEL_REGISTRY, opt['model_type'], f'{rel}: model_type')
    datasets = opt.get('datasets')
    assert datasets, f'{rel}: no datasets section'
    for phase, dataset in datasets.items():
        assert dataset and dataset.get('type'), f'{rel}: datasets.{phase} has no type'
        _known(DATASET_REGISTRY, dataset['type'], f'{rel}: datasets.{phase}.type')
        accepted = getattr(DATASET_REGISTRY.get(dataset['type']), 'OPTION_KEYS', None)
        if accepted is not None:
            unknown = sorted(set(dataset) - set(accepted) - BASICSR_DATASET_KEYS)
            assert not unknown, f'{rel}: datasets.{phase} has keys {dataset["type"]} does not accept: {unknown}'
    network = opt.get('network_g')
    assert network and network.get('type'), f'{rel}: no network_g.type'
    _known(ARCH_REGISTRY, network['type'], f'{rel}: network_g.type')
    if Path(rel).name.startswith('train_'):
        assert 'train' in datasets, f'{rel}: a training option file without datasets.train'
        assert opt.get('train'), f'{rel}: a training option file without a train section'


@pytest.mark.parametrize('rel', FILES)
def test_losses_build(rel):
    train = _load(rel).get('train') or {}
    for key, loss_opt in train.items():
        if not key.endswith('_opt') or loss_opt is None:
            continue
        where = f'{rel}: train.{key}'
        assert loss_opt.get('type'), f'{where} has no type'
        _known(LOSS_REGISTRY, loss_opt['type'], f'{where}.type')
        loss_opt.update(LOSS_OVERRIDES.get(loss_opt['type'], {}))
        try:
            loss = build_loss(loss_opt)
        except TypeError as err:
            pytest.fail(f'{where}: {loss_opt["type"]} does not take these options: {err}')
        assert isinstance(loss, torch.nn.Module), f'{where}: built {type(loss).__name__}'


@pytest.mark.parametrize('rel', FILES)
def test_optimizer_and_scheduler_build(rel):
    opt = _load(rel)
    train = opt.get('train')
    if not train or not _is_deblurzoo(MODEL_REGISTRY, opt['model_type']):
        return
    for key, table in (('optim_g', OPTIMIZERS), ('scheduler', SCHEDULERS)):
        assert train.get(key) and train[key].get('type') in table, (
            f"{rel}: train.{key}.type {(train.get(key) or {}).get('type')!r} is not one of {sorted(table)} "
            '(deblurzoo.models.deblur_model)')
    # build both with the file's arguments (a misspelled key fails here, as it would at iteration 0)
    optim_opt, sched_opt = dict(train['optim_g']), dict(train['scheduler'])
    try:
        optimizer = OPTIMIZERS[optim_opt.pop('type')]([torch.nn.Parameter(torch.zeros(1))], **optim_opt)
    except TypeError as err:
        pytest.fail(f'{rel}: train.optim_g: {err}')
    try:
        SCHEDULERS[sched_opt.pop('type')](optimizer, **sched_opt)
    except TypeError as err:
        pytest.fail(f'{rel}: train.scheduler: {err}')


@pytest.mark.parametrize('rel', FILES)
def test_network_builds_as_written_and_runs(rel):
    kwargs = dict(_load(rel)['network_g'])
    arch = kwargs.pop('type')
    torch.manual_seed(0)
    try:
        net = ARCH_REGISTRY.get(arch)(**kwargs)  # exactly as written: paper sizes, no overrides
    except TypeError as err:
        pytest.fail(f'{rel}: network_g passes an argument {arch} does not take: {err}')
    net.eval()
    torch.manual_seed(1)
    x = make_input(net, 1, 32, 32)
    with torch.no_grad():
        out = net(x)
    assert torch.is_tensor(out), f'{rel}: {arch} in eval mode returned {type(out).__name__}'
    assert tuple(out.shape) == expected_shape(net, x), (f'{rel}: {arch}: input {tuple(x.shape)} -> output '
                                                         f'{tuple(out.shape)}')
    assert torch.isfinite(out).all(), f'{rel}: {arch}: non-finite output'


# -------------------------------------------------------------------------------------------------- naming


@pytest.mark.parametrize('rel', [f for f in FILES if Path(f).parent == Path('options')])
def test_top_level_file_naming(rel):
    assert Path(rel).name.startswith(PREFIXES), f'{rel}: option files in options/ are named train_*.yml or test_*.yml'


def _partners(rel):
    """The option files paired with ``rel``: ``train_<r>.yml`` pairs with ``test_<r>.yml``; a training file without
    that partner pairs with the ``test_<r>_<data>.yml`` files evaluating its model on other sets (``train_saphn.yml``
    with ``test_saphn_gopro.yml``, ``test_saphn_hide.yml``, ...), and such a test file with that training file."""
    path = Path(rel)
    kind, rest = path.name[:-len('.yml')].split('_', 1)
    other = 'test' if kind == 'train' else 'train'
    exact = path.with_name(f'{other}_{rest}.yml')
    if (REPO / exact).is_file():
        return [exact.as_posix()]
    siblings = [Path(f) for f in FILES if Path(f).parent == path.parent and Path(f).name.startswith(other + '_')]
    if kind == 'train':  # test_<rest>_<data>.yml, unless a train file claims them more exactly
        found = [f for f in siblings if f.name.startswith(f'test_{rest}_')]
        return [f.as_posix() for f in found if _partners(f.as_posix()) == [rel]]
    # a test file: the training file of the longest prefix of its name
    parts = rest.split('_')
    for end in range(len(parts) - 1, 0, -1):
        candidate = path.with_name(f"train_{'_'.join(parts[:end])}.yml")
        if (REPO / candidate).is_file():
            return [candidate.as_posix()]
    return []


@pytest.mark.parametrize('rel', [f for f in FILES if Path(f).name.startswith(PREFIXES)])
def test_train_and_test_files_come_in_pairs(rel):
    assert _partners(rel), (f'{rel} has no partner: add the train_/test_ file of the same name (or, for a test file '
                            'evaluating on another set, train_<model>.yml)')


def _state_shapes(network_opt):
    kwargs = dict(network_opt)
    net = ARCH_REGISTRY.get(kwargs.pop('type'))(**kwargs)
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def test_pairs_are_consistent():
    """A train/test pair names the same model, and the test file's network loads the train file's checkpoint (same
    state-dict keys and shapes: ``strict_load_g``)."""
    problems = []
    pairs = [(rel, partner) for rel in FILES if Path(rel).name.startswith('train_') for partner in _partners(rel)]
    assert pairs, 'no train/test pairs found'
    for rel, partner in pairs:
        train, test = _load(rel), _load(partner)
        per_frame = (test.get('val') or {}).get('per_frame') and test['model_type'] == 'VideoDeblurModel'
        if train['model_type'] != test['model_type'] and not per_frame:  # per_frame: an image model scored on videos
            problems.append(f"{rel}: model_type {train['model_type']}, {partner}: {test['model_type']}")
        for key in ('network_g', 'network_stage1'):
            if key not in train and key not in test:
                continue
            try:
                trained, tested = _state_shapes(train[key]), _state_shapes(test[key])
            except (TypeError, KeyError) as err:  # reported by the tests above
                problems.append(f'{rel} / {partner}: {key} missing or does not build: {err}')
                continue
            if trained != tested:
                differ = sorted(k for k in set(trained) | set(tested) if trained.get(k) != tested.get(k))
                problems.append(f"{partner}: its {key} cannot load {rel}'s; parameters that differ "
                                f'(missing or of another shape): {differ[:8]}{" ..." if len(differ) > 8 else ""}')
    assert not problems, '\n'.join(problems)
