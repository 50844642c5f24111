"""Chaos: the disk fills up while deblurzoo trains, restores a folder or a video, or packs an LMDB.

Each case mounts a small tmpfs (the test must be allowed to mount: root, or CAP_SYS_ADMIN; it is skipped otherwise,
and the file system is always unmounted), puts a user's files there (a dataset, inputs, an option file, an old
checkpoint, an old LMDB), records their bytes, fills the disk up to a few hundred KB and runs the tool as its own
process. Then: every file that was there is byte-identical; every new file is complete (it decodes, loads or opens)
or absent, and no temporary file is left; the process exits non-zero with a message naming the file it could not
write and "No space left on device".
"""
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from os import path as osp

import numpy as np
import pytest
import torch
import yaml

import deblurzoo  # noqa: F401  (registers the archs)
import train_runner
from basicsr.archs import build_network
from data_factory import load_script, make_gopro_tree
from deblurzoo.data import safe_io
from deblurzoo.inference.cli import main
from test_registry import TINY

ENOSPC = 'No space left on device'


@pytest.fixture
def tmpfs():
    """A function mounting a fresh tmpfs of ``mib`` MiB and returning its path; all are unmounted at the end."""
    mounts = []

    def mount(mib=8):
        folder = tempfile.mkdtemp(prefix='deblurzoo-full-disk-')
        try:
            proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={mib}m', 'tmpfs', folder],
                                  capture_output=True, text=True, timeout=30)
            why = proc.stderr.strip() or f'status {proc.returncode}' if proc.returncode else None
        except (OSError, subprocess.TimeoutExpired) as err:  # no mount command
            why = str(err)
        if why is not None:
            os.rmdir(folder)
            pytest.skip(f'cannot mount a tmpfs here ({why}): the full-disk tests need root or CAP_SYS_ADMIN')
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        if subprocess.run(['umount', folder], capture_output=True).returncode != 0:
            subprocess.run(['umount', '-l', folder], capture_output=True)
        os.rmdir(folder)


def _snapshot(root):
    """{relative path: bytes} of every file under ``root``."""
    return {osp.relpath(osp.join(d, n), root): open(osp.join(d, n), 'rb').read()
            for d, _, names in os.walk(root) for n in names}


def _fill(root, leave):
    """Fill the file system of ``root`` with one file, leaving ``leave`` bytes free; returns the filler's path."""
    st = os.statvfs(root)
    free = st.f_bavail * st.f_frsize
    filler = osp.join(root, 'filler')
    with open(filler, 'wb') as f:
        f.write(bytes(max(0, free - leave)))
    return filler


def _check(root, before, filler, complete):
    """Every file of ``before`` is byte-identical; every new file passes ``complete(path)``; no temporary file."""
    os.remove(filler)
    after = _snapshot(root)
    changed = [p for p, data in before.items() if after.get(p) != data]
    assert not changed, f'pre-existing files changed or removed: {changed}'
    new = sorted(set(after) - set(before))
    temporary = [p for p in new if osp.basename(p).startswith('.') or p.endswith(('.tmp', '.old'))]
    assert not temporary, f'temporary files left: {temporary}'
    for path in new:
        complete(osp.join(root, path))
    return new


def _complete_file(path):
    """A new file is whole: images decode, checkpoints and states load, videos hold all their frames; logs are text."""
    ext = osp.splitext(path)[1]
    if ext in ('.png', '.jpg'):
        assert safe_io.read_image(path, -1) is not None, path
    elif ext in ('.pth', '.state'):
        torch.load(path, map_location='cpu', weights_only=False)
    elif ext in ('.mp4', '.avi'):
        assert safe_io.read_video(path), path
    elif ext == '.yml':
        yaml.safe_load(open(path))
    else:
        assert ext in ('.log', '.txt', '.mdb'), f'unexpected new file {path}'


def _run(args, cwd, timeout=180):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=train_runner._env(),
                          timeout=timeout)


def test_training_on_a_full_disk(tmpfs):
    from test_train_e2e import _train_opt
    root = tmpfs(8)
    project = pathlib.Path(root) / 'project'
    project.mkdir()
    train_runner._copy_entry_points(project)
    make_gopro_tree(osp.join(project, 'GOPRO_Large'), split='train', frames=3, size=(40, 48), with_flow=True)
    opt = _train_opt(project, 'diskfull')
    opt['datasets'].pop('val')
    opt.pop('val')
    opt['network_g'].update(num_feat=32)  # a checkpoint of ~200 KB, well above the log
    opt['train']['total_iter'] = opt['train']['scheduler']['total_iter'] = 2
    opt['logger']['save_checkpoint_freq'] = 2
    opt_path = train_runner._write(project, opt, 'diskfull.yml')
    buf = io.BytesIO()
    torch.save({'params': build_network(dict(opt['network_g'])).state_dict()}, buf)
    safe_io.write_bytes_atomic(osp.join(project, 'old_net_g.pth'), buf.getvalue())  # a user's checkpoint
    before = _snapshot(root)
    filler = _fill(root, len(buf.getvalue()) // 2)

    run = _run(['deblurzoo/train.py', '-opt', opt_path], cwd=project)
    assert run.returncode != 0, run.stderr[-3000:]
    assert ENOSPC in run.stderr and 'net_g_2.pth' in run.stderr, run.stderr[-3000:]
    new = _check(root, before, filler, _complete_file)
    assert not any(p.endswith(('.pth', '.state')) for p in new), new


@pytest.fixture(scope='module')
def option(tmp_path_factory):
    """An option file of the identity AtrousNet with its checkpoint (off the small file system)."""
    root = tmp_path_factory.mktemp('model')
    torch.manual_seed(0)
    torch.save({'params': build_network({'type': 'AtrousNet', **TINY['AtrousNet']}).state_dict()},
               root / 'atrous.pth')
    opt = {'network_g': {'type': 'AtrousNet', **TINY['AtrousNet']},
           'path': {'pretrain_network_g': str(root / 'atrous.pth'), 'param_key_g': 'params'}}
    (root / 'atrous.yml').write_text(yaml.safe_dump(opt))
    return str(root / 'atrous.yml')


def _infer(capsys, option, src, dst):
    """deblurzoo-infer in this process (its exit status and stderr)."""
    capsys.readouterr()
    status = main(['--model', option, '--input', src, '--output', dst, '--device', 'cpu', '--tile', '0', '--quiet'])
    return status, capsys.readouterr().err


def test_inference_over_a_folder_on_a_full_disk(tmpfs, option, capsys):
    root = tmpfs(4)
    rng = np.random.default_rng(0)
    os.makedirs(osp.join(root, 'photos'))
    for i in range(6):
        safe_io.write_image(osp.join(root, 'photos', f'{i}.png'), rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    size = os.path.getsize(osp.join(root, 'photos', '0.png'))
    os.makedirs(osp.join(root, 'sharp'))
    safe_io.write_bytes_atomic(osp.join(root, 'sharp', 'notes.txt'), b'mine')  # a user's file in the output folder
    before = _snapshot(root)
    filler = _fill(root, int(2.5 * size))  # room for two outputs

    status, err = _infer(capsys, option, osp.join(root, 'photos'), osp.join(root, 'sharp'))
    assert status == 2, err
    assert f'cannot write {root}/sharp/' in err and ENOSPC in err, err
    assert 'input(s) failed (listed above)' in err
    new = _check(root, before, filler, _complete_file)
    assert 1 <= len(new) < 6, new  # the outputs that fitted are whole; the others absent


def test_a_video_on_a_full_disk(tmpfs, option, capsys):
    root = tmpfs(4)
    rng = np.random.default_rng(0)
    writer = safe_io.AtomicVideoWriter(osp.join(root, 'clip.avi'), 5.0, 'MJPG')
    for _ in range(8):
        writer.write(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    writer.close()
    size = os.path.getsize(osp.join(root, 'clip.avi'))
    before = _snapshot(root)
    filler = _fill(root, size // 2)

    status, err = _infer(capsys, option, osp.join(root, 'clip.avi'), osp.join(root, 'sharp.avi'))
    assert status == 2, err
    assert f'cannot write {root}/sharp.avi: ' in err and ENOSPC in err, err
    assert _check(root, before, filler, _complete_file) == []


def test_lmdb_packing_on_a_full_disk(tmpfs):
    root = tmpfs(8)
    data = make_gopro_tree(osp.join(root, 'GOPRO_Large'), split='test', seqs=('S1', 'S2'), frames=4, size=(64, 96))
    make_lmdb = load_script('make_lmdb')
    make_lmdb.main(['--root', data, '--split', 'test', '--out', osp.join(root, 'lmdb')])  # a user's old lmdb
    shutil.copytree(osp.join(data, 'test', 'S1'), osp.join(data, 'test', 'S3'))  # more data since
    before = _snapshot(root)
    filler = _fill(root, 64 << 10)

    with pytest.raises(OSError) as info:  # the script prints it (make_lmdb.py: error: ...) and exits with status 1
        make_lmdb.main(['--root', data, '--split', 'test', '--out', osp.join(root, 'lmdb'), '--force'])
    assert f'cannot write the lmdb {root}/lmdb/' in str(info.value) and ENOSPC in str(info.value), info.value
    assert _check(root, before, filler, _complete_file) == []
