"""A training run survives being killed: checkpoints are written atomically, ``--auto_resume`` continues exactly where
the newest saved state left off (same batches, same random crops and flips, so the same loss curve as a run that was
never interrupted), a full disk stops training without leaving a truncated checkpoint behind, and a non-finite loss
never reaches the parameters. Runs are subprocesses of ``deblurzoo/train.py`` under a temporary root (see
``test_train_e2e.py``)."""
import os
import re
import resource
import signal
import subprocess
import sys
import time

import pytest
import torch

import deblurzoo  # noqa: F401
from deblurzoo import checkpoint, training
import test_train_e2e
from test_train_e2e import _log, _run, _train_opt, _write

pytestmark = pytest.mark.slow

root = test_train_e2e.root  # the fixture: a temporary project root with a tiny GoPro set
LOSS_LINE = re.compile(r'iter:\s*([\d,]+),.*?l_pix: (\S+) l_position: (\S+)')


def _losses(log):
    """{iteration: (l_pix, l_position)} from a BasicSR training log (a resumed run's log repeats none)."""
    return {int(m.group(1).replace(',', '')): tuple(float(v) for v in m.group(2, 3)) for m in LOSS_LINE.finditer(log)}


def _params(root, name):
    return torch.load(root / 'experiments' / name / 'models' / 'net_g_latest.pth', weights_only=True)['params']


def _resume_opt(root, name, total_iter):
    """Random crops, flips and RGB permutations on (so the generators matter), checkpoints every 8 iterations, 3
    batches per epoch (6 pairs, batch 2): states fall inside epochs."""
    opt = _train_opt(root, name, total_iter=total_iter)
    opt['train']['scheduler']['total_iter'] = total_iter
    opt['logger']['save_checkpoint_freq'] = 8
    opt['val']['val_freq'] = 10 ** 6
    return opt


def test_sigkill_then_auto_resume_repeats_the_uninterrupted_loss_curve(root):
    total = 40
    full = _run(root, 'deblurzoo/train.py', '-opt', _write(root, _resume_opt(root, 'full', total), 'full.yml'))
    assert full.returncode == 0, full.stderr[-4000:]
    reference = _losses(_log(root, 'full'))
    assert sorted(reference) == list(range(1, total + 1))

    opt_path = _write(root, _resume_opt(root, 'killed', total), 'killed.yml')
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, 'deblurzoo/train.py', '-opt', opt_path], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # kill it between two checkpoints: after iteration 18 is logged (states 8 and 16 are saved)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if os.path.isdir(root / 'experiments' / 'killed') and max(_losses(_log(root, 'killed')), default=0) >= 18:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, 'the run finished before it could be killed'
    killed_at = max(_losses(_log(root, 'killed')))
    assert killed_at < total
    states = sorted(f for f in os.listdir(root / 'experiments' / 'killed' / 'training_states'))
    newest = max(int(f.split('.')[0]) for f in states if f.endswith('.state'))
    assert newest == 8 * (killed_at // 8) and newest >= 16

    resumed = _run(root, 'deblurzoo/train.py', '-opt', opt_path, '--auto_resume')
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    log = _log(root, 'killed')
    assert re.search(rf'Resuming training from epoch: \d+, iter: {newest}\.', log)
    assert f'skipping its first {newest % 3} batch(es)' in log  # 3 batches per epoch: 16 and 32 are inside one
    # the resumed run's log (the newest file) holds iterations newest+1..total, equal to the uninterrupted run's
    after = _losses(sorted((root / 'experiments' / 'killed').glob('train_killed_*.log'))[-1].read_text())
    assert sorted(after) == list(range(newest + 1, total + 1))
    for it, values in after.items():
        assert values == pytest.approx(reference[it], rel=1e-4), f'iteration {it}'
    full_params, resumed_params = _params(root, 'full'), _params(root, 'killed')
    for key, value in full_params.items():
        torch.testing.assert_close(resumed_params[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_full_disk_while_saving_keeps_the_previous_checkpoint_newest(root):
    """A file-size limit below one checkpoint's size makes every write of a checkpoint fail as a full disk would
    (EFBIG instead of ENOSPC; the same code path): training stops with an error naming the file, no partial file
    is left, the newest state is still the previous one, and --auto_resume continues from it."""
    opt = _train_opt(root, 'diskfull')  # 4 iterations, checkpoints at 2 and 4
    opt['network_g'].update(num_feat=32)  # a checkpoint of ~200 KB, well above the training log
    opt_path = _write(root, opt, 'diskfull.yml')
    first = _run(root, 'deblurzoo/train.py', '-opt', opt_path, '--force_yml', 'train:total_iter=2')
    assert first.returncode == 0, first.stderr[-4000:]
    exp = root / 'experiments' / 'diskfull'
    size = os.path.getsize(exp / 'models' / 'net_g_2.pth')

    def saved():
        return {p.relative_to(exp).as_posix(): p.read_bytes() for p in exp.glob('*/*') if p.parent.name in
                ('models', 'training_states')}

    before = saved()
    assert set(before) == {'models/net_g_2.pth', 'models/net_g_latest.pth', 'training_states/2.state'}

    def limit_file_size():  # CPython ignores SIGXFSZ, so an oversized write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    limited = subprocess.run([sys.executable, 'deblurzoo/train.py', '-opt', opt_path, '--auto_resume'], cwd=root,
                             env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size)
    assert limited.returncode != 0
    assert re.search(r'cannot save \S*net_g_4\.pth \(File too large\); nothing was overwritten', limited.stderr), \
        limited.stderr[-3000:]
    assert saved() == before  # no new, partial or changed file

    again = _run(root, 'deblurzoo/train.py', '-opt', opt_path, '--auto_resume')
    assert again.returncode == 0, again.stderr[-4000:]
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', _log(root, 'diskfull'))
    assert {'net_g_4.pth', 'net_g_latest.pth'} <= set(os.listdir(exp / 'models'))


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / '8.state'
    checkpoint.atomic_save({'iter': 4}, str(path))
    good = path.read_bytes()

    def fail_midway(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 half a zip file')
        raise RuntimeError('PytorchStreamWriter failed writing file data/0: file write failed')

    monkeypatch.setattr(torch, 'save', fail_midway)
    monkeypatch.setattr(time, 'sleep', lambda s: None)
    with pytest.raises(OSError, match=rf'cannot save {re.escape(str(path))} .*file write failed.*nothing was '
                       r'overwritten'):
        checkpoint.atomic_save({'iter': 8}, str(path))
    assert path.read_bytes() == good and os.listdir(tmp_path) == ['8.state']

    def interrupted(obj, f, *args, **kwargs):
        f.write(b'PK')
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_save({'iter': 8}, str(path))
    assert path.read_bytes() == good and os.listdir(tmp_path) == ['8.state']


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    path = str(tmp_path / 'rng.state')
    checkpoint.atomic_save({'rng': [training.rng_state()]}, path)
    expected = random.random(), np.random.rand(), torch.rand(1).item()
    training.set_rng_state(torch.load(path, weights_only=True)['rng'][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_auto_resume_skips_an_unreadable_newest_state(root):
    """A state left truncated by an older tool (or damaged on disk) is reported and the one before it is used."""
    opt = _train_opt(root, 'damaged')
    opt_path = _write(root, opt, 'damaged.yml')
    run = _run(root, 'deblurzoo/train.py', '-opt', opt_path)
    assert run.returncode == 0, run.stderr[-4000:]
    states = root / 'experiments' / 'damaged' / 'training_states'
    (states / '4.state').write_bytes((states / '4.state').read_bytes()[:100])
    run = _run(root, 'deblurzoo/train.py', '-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=5')
    assert run.returncode == 0, run.stderr[-4000:]
    assert re.search(r'skipped a training state: Cannot load the training state \S*4\.state', run.stdout)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', _log(root, 'damaged'))


def test_training_set_smaller_than_a_batch_is_an_error(root):
    opt = _train_opt(root, 'tiny_set')
    opt['datasets']['train']['batch_size_per_gpu'] = 7  # 6 training pairs
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, opt, 'tiny_set.yml'))
    assert run.returncode != 0
    assert re.search(r"datasets\.train '\w+': 6 samples .* make no full batch of batch_size_per_gpu 7", run.stderr), \
        run.stderr[-3000:]


def test_epochs_count_the_loaders_real_batches(root):
    """BasicSR counts ceil(6 / 4) = 2 iterations per epoch while its loader drops the last incomplete batch (1 per
    epoch): it would stop after 3 of 6 iterations."""
    opt = _train_opt(root, 'epochs')
    opt['datasets']['train']['batch_size_per_gpu'] = 4
    opt['train']['total_iter'] = opt['train']['scheduler']['total_iter'] = 6
    opt['logger']['save_checkpoint_freq'] = 6
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, opt, 'epochs.yml'))
    assert run.returncode == 0, run.stderr[-4000:]
    assert '6.state' in os.listdir(root / 'experiments' / 'epochs' / 'training_states')
    assert re.search(r'iter:\s+6,', _log(root, 'epochs'))
