"""Bad-input matrix, training side: option files, checkpoints and training steps that go wrong. Each case asserts an
error naming the file, key or value at fault (or, where handling is right, the handling). Models are built in-process
with the builders of deblurzoo's trainer extensions (``deblurzoo.training``, which ``deblurzoo/train.py`` enables); the
cases that need BasicSR's whole training pipeline run ``deblurzoo/train.py``."""
import os
import re
import shutil

import pytest
import torch

import deblurzoo  # noqa: F401
import test_train_e2e
from deblurzoo.training import build_loss, build_model, build_network
from test_train_e2e import _log, _run, _train_opt, _write

root = test_train_e2e.root  # the fixture: a temporary project root with a tiny GoPro set


def _model_opt(tmp_path, **train):
    """A training option dict as BasicSR's parse_options makes it, for a tiny SVDN."""
    exp = tmp_path / 'experiments' / 'm'
    opt = {
        'name': 'm', 'model_type': 'DeblurModel', 'scale': 1, 'num_gpu': 0, 'is_train': True, 'dist': False,
        'rank': 0, 'world_size': 1, 'manual_seed': 0, 'auto_resume': False,
        'network_g': {'type': 'SVDN', 'num_feat': 8, 'num_conv': 1},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None, 'experiments_root': str(exp),
                 'models': str(exp / 'models'), 'training_states': str(exp / 'training_states'), 'log': str(exp)},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 10, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
    }
    opt['train'].update(train)
    return opt


def _batch(nan=False):
    torch.manual_seed(0)
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    if nan:
        lq[0, 0, 3, 3] = float('nan')
    return {'lq': lq, 'gt': gt}


def _params(model):
    return {k: v.clone() for k, v in model.net_g.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


class CodeInPickle:
    """Unpickling this creates ``marker``: a stand-in for arbitrary code carried by a checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, 'w')


def _checkpoint(tmp_path, kind):
    """A checkpoint file for ``kind``: 'wrong_arch', 'pickled_code', 'no_params_key', 'truncated'."""
    path = tmp_path / f'{kind}.pth'
    if kind == 'wrong_arch':
        torch.save({'params': build_network({'type': 'SARN', 'num_feat': 4, 'num_block': 1}).state_dict()}, path)
    elif kind == 'pickled_code':
        torch.save({'params': CodeInPickle(str(tmp_path / 'code_ran'))}, path)
    elif kind == 'no_params_key':
        net = build_network({'type': 'SVDN', 'num_feat': 8, 'num_conv': 1})
        torch.save({'weights': net.state_dict()}, path)
    elif kind == 'truncated':
        net = build_network({'type': 'SVDN', 'num_feat': 8, 'num_conv': 1})
        torch.save({'params': net.state_dict()}, path)
        path.write_bytes(path.read_bytes()[:1000])
    return str(path)


# ---------------------------------------------------------------------------------------------------------------------
# option files: names and keys
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('build, message', [
    pytest.param(lambda: build_network({'type': 'SVDNN'}), r"Unknown type 'SVDNN' in the 'arch' registry.*SVDN",
                 id='unknown-arch-type'),
    pytest.param(lambda: build_loss({'type': 'L1'}), r"Unknown type 'L1' in the 'loss' registry.*L1Loss",
                 id='unknown-loss-type'),
    pytest.param(lambda: build_network({'type': 'SVDN', 'num_feats': 8}),
                 r"network type 'SVDN': unknown key\(s\) 'num_feats' \(did you mean 'num_feat'\?\)\. Accepted keys: "
                 r"num_in_ch=3, .*num_feat=64, .*deform_kernel_size=5", id='unknown-arch-key'),
    pytest.param(lambda: build_loss({'type': 'L1Loss', 'loss_weigth': 1.0}),
                 r"loss type 'L1Loss': unknown key\(s\) 'loss_weigth' \(did you mean 'loss_weight'\?\)\. "
                 r"Accepted keys: loss_weight=1\.0, reduction='mean'", id='unknown-loss-key'),
    pytest.param(lambda: build_loss({'type': 'PerceptualLoss'}),
                 r"loss type 'PerceptualLoss': missing required key\(s\) 'layer_weights'\. "
                 r"Accepted keys: layer_weights,",
                 id='missing-required-loss-key'),
])
def test_bad_names_and_keys_in_option_sections(build, message):
    with pytest.raises((KeyError, TypeError), match=message):
        build()


@pytest.mark.parametrize('change, error, message', [
    pytest.param(lambda o: o.update(model_type='DeblurModle'), KeyError,
                 r"Unknown type 'DeblurModle' in the 'model' registry.*DeblurModel", id='unknown-model-type'),
    pytest.param(lambda o: o['train']['optim_g'].update(type='Adma'), ValueError,
                 r"train\.optim_g\.type: unknown 'Adma'; use one of Adam, AdamW, SGD", id='unknown-optimizer'),
    pytest.param(lambda o: o['train'].update(nan_policy='ignore'), ValueError,
                 r"train\.nan_policy: unknown 'ignore'; use one of stop, skip", id='unknown-nan-policy'),
    pytest.param(lambda o: o['network_g'].pop('num_feat') and o['network_g'].update(width=8), TypeError,
                 r"network type 'SVDN': unknown key\(s\) 'width'", id='unknown-network_g-key-in-model'),
])
def test_bad_option_values_fail_when_the_model_is_built(tmp_path, change, error, message):
    opt = _model_opt(tmp_path)
    change(opt)
    with pytest.raises(error, match=message):
        build_model(opt)


# ---------------------------------------------------------------------------------------------------------------------
# checkpoints: path.pretrain_network_g
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kind, message', [
    pytest.param('wrong_arch', r'cannot load SVDN weights: checkpoint \S+wrong_arch\.pth \[\'params\'\] does not fit '
                 r'SVDN .*missing keys \(\d+\): .*unexpected keys \(\d+\)', id='wrong-checkpoint-for-arch'),
    pytest.param('pickled_code', r'refusing to load \S+pickled_code\.pth: it holds Python objects',
                 id='checkpoint-with-pickled-code'),
    pytest.param('no_params_key', r"checkpoint \S+no_params_key\.pth has no key 'params'; it has: weights",
                 id='checkpoint-without-param-key'),
    pytest.param('truncated', r'cannot read checkpoint \S+truncated\.pth', id='truncated-checkpoint'),
    pytest.param('missing', r'checkpoint not found: \S+missing\.pth', id='missing-checkpoint'),
])
def test_bad_pretrained_checkpoints_are_refused_with_the_file_named(tmp_path, kind, message):
    opt = _model_opt(tmp_path)
    opt['path']['pretrain_network_g'] = _checkpoint(tmp_path, kind)
    with pytest.raises(RuntimeError, match=message):
        build_model(opt)
    assert not (tmp_path / 'code_ran').exists()  # the pickled code never ran


def test_pretrained_checkpoint_loads_non_strict_keeping_what_fits(tmp_path):
    """Handling: ``strict_load_g: false`` loads the parameters that fit (BasicSR's behaviour), and reports the rest."""
    other = build_network({'type': 'SVDN', 'num_feat': 8, 'num_conv': 2})  # one more conv in the body
    path = tmp_path / 'deeper.pth'
    torch.save({'params': other.state_dict()}, path)
    opt = _model_opt(tmp_path)
    opt['path'].update(pretrain_network_g=str(path), strict_load_g=False)
    model = build_model(opt)
    own, theirs = model.net_g.state_dict(), other.state_dict()
    shared = [k for k in own if k in theirs and own[k].shape == theirs[k].shape]
    assert shared and all(torch.equal(own[k], theirs[k]) for k in shared)


# ---------------------------------------------------------------------------------------------------------------------
# training steps: NaN / inf
# ---------------------------------------------------------------------------------------------------------------------

def test_nan_loss_stops_training_without_touching_the_parameters(tmp_path):
    model = build_model(_model_opt(tmp_path))
    before = _params(model)
    model.feed_data(_batch(nan=True))
    with pytest.raises(FloatingPointError, match=r'non-finite loss or gradient at iteration 7 \(l_pix=nan\); training '
                       r'stopped \(train\.nan_policy: stop\).*no checkpoint has been saved yet'):
        model.optimize_parameters(7)
    assert _same(before, _params(model))


def test_nan_loss_is_skipped_with_nan_policy_skip_up_to_the_limit(tmp_path, caplog):
    model = build_model(_model_opt(tmp_path, nan_policy='skip', nan_skip_limit=2))
    before = _params(model)
    for it in (1, 2):
        model.feed_data(_batch(nan=True))
        model.optimize_parameters(it)
    assert _same(before, _params(model))
    model.feed_data(_batch())  # a good step trains and resets the count
    model.optimize_parameters(3)
    assert not _same(before, _params(model))
    for it in (4, 5):
        model.feed_data(_batch(nan=True))
        model.optimize_parameters(it)
    model.feed_data(_batch(nan=True))
    with pytest.raises(FloatingPointError, match=r'iteration 6 .*3 steps in a row \(train\.nan_skip_limit: 2\)'):
        model.optimize_parameters(6)


def test_inf_gradient_with_finite_loss_is_caught(tmp_path):
    """A loss can be finite while a gradient overflows: the step is still refused."""
    model = build_model(_model_opt(tmp_path))
    before = _params(model)
    next(model.net_g.parameters()).register_hook(lambda g: g * float('inf'))
    model.feed_data(_batch())
    with pytest.raises(FloatingPointError, match=r'iteration 1 \(l_pix=\d'):
        model.optimize_parameters(1)
    assert _same(before, _params(model))


def test_diverging_run_stops_and_keeps_its_checkpoints(root):
    """End to end: a learning rate of 1e30 makes the second step's loss infinite; training stops with the message,
    the newest checkpoint is the one saved before, and nothing is saved for the bad step."""
    opt = _train_opt(root, 'diverge')
    opt['train']['optim_g']['lr'] = 1e30
    opt['logger']['save_checkpoint_freq'] = 1
    opt['val']['val_freq'] = 10 ** 6
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, opt, 'diverge.yml'))
    assert run.returncode != 0
    match = re.search(r'FloatingPointError: non-finite loss or gradient at iteration (\d+) .*the newest checkpoint is '
                      r'(\S+)\.state:', run.stderr)
    assert match, run.stderr[-3000:]
    bad = int(match.group(1))
    states = os.listdir(root / 'experiments' / 'diverge' / 'training_states')
    assert sorted(states) == [f'{i}.state' for i in range(1, bad)]
    assert match.group(2).endswith(f'{bad - 1}')


# ---------------------------------------------------------------------------------------------------------------------
# the experiment folder
# ---------------------------------------------------------------------------------------------------------------------

def _root_with_experiments(tmp_path, make):
    """A project root holding deblurzoo/train.py whose ``experiments`` entry ``make(path)`` creates."""
    other = tmp_path / 'project'
    (other / 'deblurzoo').mkdir(parents=True)
    shutil.copy(os.path.join(test_train_e2e.REPO, 'deblurzoo', 'train.py'), other / 'deblurzoo' / 'train.py')
    make(other / 'experiments')
    return other


@pytest.mark.parametrize('make, reason', [
    pytest.param(lambda p: p.write_text('a file where the experiments folder should be'), 'Not a directory',
                 id='experiments-is-a-file'),
    pytest.param(lambda p: p.symlink_to('/sys'), 'Operation not permitted', id='experiments-on-read-only-fs'),
])
def test_experiment_folder_that_cannot_be_created(root, tmp_path, make, reason):
    other = _root_with_experiments(tmp_path, make)
    opt = _train_opt(root, 'blocked')
    run = _run(other, 'deblurzoo/train.py', '-opt', _write(other, opt, 'blocked.yml'))
    assert run.returncode != 0
    folder = re.escape(str(other / 'experiments' / 'blocked'))
    assert re.search(rf'cannot create the experiment folder {folder} \({reason}\)', run.stderr), run.stderr[-3000:]


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes through file permissions')
def test_unwritable_experiment_folder_fails_before_training(root):
    opt = _train_opt(root, 'readonly')
    opt_path = _write(root, opt, 'readonly.yml')
    assert _run(root, 'deblurzoo/train.py', '-opt', opt_path).returncode == 0
    models = root / 'experiments' / 'readonly' / 'models'
    os.chmod(models, 0o500)
    try:
        run = _run(root, 'deblurzoo/train.py', '-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=6')
    finally:
        os.chmod(models, 0o700)
    assert run.returncode != 0
    assert re.search(rf'the experiment folder {re.escape(str(models))} is not writable', run.stderr)
    assert 'iter:       5' not in _log(root, 'readonly')
