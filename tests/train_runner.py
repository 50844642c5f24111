"""Helpers that run deblurzoo's entry points as subprocesses under a temporary root (a helper module, not a test file;
shared by test_train_e2e.py and test_distributed.py)."""
import os
import shutil
import socket
import subprocess
import sys

import yaml


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _copy_entry_points(root):
    """Copy ``deblurzoo/{train,test}.py`` under ``root``, so that BasicSR puts ``experiments/``, ``tb_logger/`` and
    ``results/`` there."""
    os.makedirs(root / 'deblurzoo')
    for name in ('train.py', 'test.py'):
        shutil.copy(os.path.join(REPO, 'deblurzoo', name), root / 'deblurzoo' / name)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _write(root, opt, filename):
    path = root / filename
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path)


def _env():
    """The subprocesses' environment: CPU only, one thread each."""
    return dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')


def _run(root, *args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True, env=_env(),
                          timeout=timeout)


def _log(root, name, prefix='train'):
    folder = root / ('experiments' if prefix == 'train' else 'results') / name
    logs = sorted(p for p in os.listdir(folder) if p.startswith(prefix) and p.endswith('.log'))
    return '\n'.join(open(folder / p).read() for p in logs)
