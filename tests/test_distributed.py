"""Distributed training through the real entry points: ``deblurzoo/train.py`` copied under a temporary root and run
with ``torch.distributed.run`` (2 gloo processes on CPU) or as 1 process.

What each test proves:

- ``test_image_model_ddp_equals_single_process``: 2 processes x batch B train what 1 process x batch 2B trains
  (SVDNModel with a tiny SVDN, position loss off, B = 2, 3 SGD steps at lr 0.02). BasicSR's ``EnlargedSampler``
  shares out one permutation seeded by the epoch (rank r takes ``perm[r::2]``), so with 8 training pairs (a multiple
  of 2B) the ranks' batches b together are the single process's batch b, in the first epoch and the second; DDP
  averages the ranks' gradients of a mean L1 loss, which is the gradient of the mean over the global batch. The
  runs' ``net_g_latest.pth`` agree to ``ATOL`` = 1e-5 (absolute, on weights of magnitude up to ~0.7; measured
  ~5e-7: float rounding, and the L1 loss's sign at pixels whose residual is ~0), and the difference's norm is
  below 1/1000 of how far the steps moved the weights (every tensor moved) and below 1/50 of the distance to a
  single process with batch B (other global batches): a sampler that shards differently, ranks seeded
  differently or gradients summed instead of averaged would fail it.
- ``test_video_model_ddp_equals_single_process``: the same for ``VideoDeblurModel`` with a tiny ``SARNRecurrent``
  on DVD-layout clips (``DVDDataset``: 8 clips of 3 frames, L1 over all frames).
- ``test_validation_counts_every_image_once``: ``DeblurModel``'s validation over 2 ranks (rank r takes images r,
  r + 2, ...; sums and count all-reduced) on an odd number of pairs (5, in 2 sequences), one an outlier (its sharp
  frame inverted, so its PSNR is far from the others'). ``val.save_img`` writes exactly the 5 pairs' outputs, each
  equal to what this process restores with the run's weights; the logged PSNR is the mean of those 5 outputs'
  PSNRs to the log's 4 decimals, and counting any image twice or dropping one would move the mean by more than
  1e-3 (checked for each). The single process's run is held to the same; the two logged values differ by less
  than 0.01 dB only, since the two runs' weights differ by float rounding.
- ``test_torchrun_restarts_a_killed_worker_and_resumes``: ``torch.distributed.run --max-restarts=1`` with
  ``--auto_resume`` (60 iterations, a state every 10): rank 1 SIGKILLed once the first state is written makes
  torchrun restart both workers, which resume from the newest state (iteration >= 10, logged once) and finish
  (exit status 0, iteration 60 logged, ``net_g_latest.pth`` and ``60.state`` written). With ``--master_port``
  torchrun serves one store for all attempts; ``deblurzoo.compat``'s ``init_dist`` keeps each attempt's keys apart
  (without it the restarted workers read the dead attempt's gloo addresses and fail or hang, now and then).

The equivalence runs start from the same weights (a tiny net with every weight perturbed, written here and loaded
with ``pretrain_network_g``, so every layer gets gradients from the first step: the nets' zero-initialised last
convs would leave most layers untouched in 3 steps) and the same seed; crops take the whole 32x32 image (``gt_size``
32: ``paired_random_crop`` has one place to crop) and flips, rotations and channel permutations are off, so a step
has no per-rank randomness. SGD, not Adam: Adam's first steps move every weight by about lr whatever the size of
its gradient, so rounding in a near-zero gradient could flip a weight's step.
"""
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

import data_factory
from train_runner import _env, _free_port, _log, _run, _write

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
pytestmark = pytest.mark.slow

SIZE = (32, 32)  # square and equal to gt_size: paired_random_crop always takes the whole image
B = 2  # batch per process in the 2-process runs
STEPS = 3
ATOL = 1e-5  # absolute, on weights of magnitude up to ~0.7
TINY_SVDN = dict(type='SVDN', num_feat=8, num_conv=1)
TINY_SARN_RECURRENT = dict(type='SARNRecurrent', num_feat=4, num_block=1, lstm_feat=4)
VAL_SEQS = {'GOPR0101_00_00': 3, 'GOPR0102_00_00': 2}  # 5 validation pairs: an odd number


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    """A temporary project root with train.py, 8 training pairs and 5 validation pairs (GoPro layout, 32x32), 8
    training clips of 3 frames (DVD layout, 32x32) and initial weights for both nets."""
    root = tmp_path_factory.mktemp('dist')
    os.makedirs(root / 'deblurzoo')
    shutil.copy(osp.join(REPO, 'deblurzoo', 'train.py'), root / 'deblurzoo' / 'train.py')
    gopro = str(root / 'GOPRO_Large')
    data_factory.make_gopro_tree(gopro, split='train', frames=4, size=SIZE)  # 2 x 4 = 8 pairs, 2 global batches
    for seed, (seq, frames) in enumerate(VAL_SEQS.items()):
        data_factory.make_gopro_tree(gopro, split='test', seqs=(seq,), frames=frames, size=SIZE, seed=seed)
    # an outlier: one sharp frame inverted, so its PSNR is far below the others'
    outlier = osp.join(gopro, 'test', 'GOPR0102_00_00', 'sharp')
    outlier = osp.join(outlier, sorted(os.listdir(outlier))[0])
    cv2.imwrite(outlier, 255 - cv2.imread(outlier))
    # 2 sequences x 6 frames: 8 clips of 3 frames, 2 global batches
    data_factory.make_dvd_tree(str(root / 'dvd'), seqs=data_factory.DVD_TRAIN_SEQS, frames=6, size=SIZE)
    for arch in (TINY_SVDN, TINY_SARN_RECURRENT):
        _initial_weights(arch, root / f'init_{arch["type"]}.pth')
    return root


def _initial_weights(arch, path):
    """A tiny net's weights, every one perturbed (zero-initialised last convs would leave most layers without
    gradient in the first steps), saved as a BasicSR checkpoint."""
    import deblurzoo  # noqa: F401  (registers the archs)
    from basicsr.archs import build_network
    torch.manual_seed(0)
    net = build_network(dict(arch))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save({'params': net.state_dict()}, path)


def _common(opt, name, arch, root, batch):
    opt.update(name=name, num_gpu=0, manual_seed=10, scale=1)
    opt['network_g'] = dict(arch)
    opt['path'] = {'pretrain_network_g': str(root / f'init_{arch["type"]}.pth'), 'strict_load_g': True,
                   'resume_state': None}
    opt['datasets']['train'].update(gt_size=SIZE[0], use_hflip=False, use_rot=False, use_channel_permute=False,
                                    batch_size_per_gpu=batch, num_worker_per_gpu=0, dataset_enlarge_ratio=1,
                                    prefetch_mode=None, io_backend={'type': 'disk'})
    opt['train'] = {
        'ema_decay': 0,
        'optim_g': {'type': 'SGD', 'lr': 0.02, 'momentum': 0.9},
        'scheduler': {'type': 'PolyLR', 'total_iter': STEPS, 'power': 0.9, 'eta_min': 0.002},
        'total_iter': STEPS,
        'warmup_iter': -1,
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
    }
    opt['logger'] = {'print_freq': 1, 'save_checkpoint_freq': 1000, 'use_tb_logger': False}
    return opt


def _image_opt(root, name, batch, validate=True):
    """SVDNModel (position loss off, no flows) on the 8 training pairs; validation (images saved) only after
    training."""
    gopro = str(root / 'GOPRO_Large')
    opt = {
        'model_type': 'SVDNModel',
        'datasets': {
            'train': {'name': 'train', 'type': 'GoProDataset', 'dataroot': gopro, 'split': 'train'},
            'val': {'name': 'val', 'type': 'GoProDataset', 'dataroot': gopro, 'split': 'test',
                    'io_backend': {'type': 'disk'}},
        },
        'val': {'val_freq': 1000, 'save_img': True, 'pbar': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
    }
    opt = _common(opt, name, TINY_SVDN, root, batch)
    if not validate:
        del opt['val'], opt['datasets']['val']
    return opt


def _video_opt(root, name, batch):
    """VideoDeblurModel with a tiny SARNRecurrent on the 8 training clips of 3 frames; no validation."""
    data_root = str(root / 'dvd' / 'DeepVideoDeblurring_Dataset' / 'quantitative_datasets')
    opt = {
        'model_type': 'VideoDeblurModel',
        'datasets': {'train': {'name': 'train', 'type': 'DVDDataset', 'dataroot': data_root, 'lq_folder': 'input',
                               'gt_folder': 'GT', 'partition': 'all', 'num_frame': 3}},
    }
    return _common(opt, name, TINY_SARN_RECURRENT, root, batch)


def _train(root, opt, processes=1):
    """Run train.py on ``opt`` (torchrun with ``processes`` > 1); the trained weights."""
    path = _write(root, opt, f'train_{opt["name"]}.yml')
    if processes == 1:
        run = _run(root, 'deblurzoo/train.py', '-opt', path)
    else:
        run = _run(root, '-m', 'torch.distributed.run', f'--nproc_per_node={processes}',
                   f'--master_port={_free_port()}', 'deblurzoo/train.py', '-opt', path, '--launcher', 'pytorch')
    assert run.returncode == 0, run.stderr[-4000:]
    log = _log(root, opt['name'])
    assert f'World size (gpu number): {processes}' in log
    assert re.search(rf'iter:\s+{STEPS},', log) and not re.search(rf'iter:\s+{STEPS + 1},', log)
    return torch.load(root / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth', weights_only=True)['params']


def _distance(a, b):
    """(max |a - b|, ||a - b||) over all the tensors of two state dicts."""
    assert a.keys() == b.keys()
    diffs = [(a[k].double() - b[k].double()).flatten() for k in a]
    return max(d.abs().max().item() for d in diffs), torch.cat(diffs).norm().item()


def _assert_equivalent(root, arch, ddp, single, other):
    """``ddp`` and ``single`` agree to ``ATOL`` and their distance is tiny next to how far training moved the weights
    (every tensor moved) and next to ``other``'s distance (another global batch, the same number of steps)."""
    init = torch.load(root / f'init_{arch["type"]}.pth', weights_only=True)['params']
    gap, gap_norm = _distance(ddp, single)
    moved = _distance(single, init)[1]
    other_norm = _distance(other, single)[1]
    report = f'2 processes vs 1: max {gap:.3g}, norm {gap_norm:.3g}; moved {moved:.3g}; other batches {other_norm:.3g}'
    assert gap <= ATOL, report
    assert all(not torch.equal(single[k], init[k]) for k in init), report
    assert gap_norm * 1000 <= moved and gap_norm * 50 <= other_norm, report
    print(report)


@pytest.fixture(scope='module')
def image_runs(root):
    """{name: trained weights} of the image runs: 2 processes x B and 1 x 2B (both validated after training), 1 x B."""
    return {name: _train(root, _image_opt(root, name, batch, validate), processes)
            for name, processes, batch, validate in (('svdn_2p', 2, B, True), ('svdn_1p', 1, 2 * B, True),
                                                     ('svdn_1p_small_batch', 1, B, False))}


def test_image_model_ddp_equals_single_process(root, image_runs):
    _assert_equivalent(root, TINY_SVDN, image_runs['svdn_2p'], image_runs['svdn_1p'], image_runs['svdn_1p_small_batch'])


def test_video_model_ddp_equals_single_process(root):
    ddp = _train(root, _video_opt(root, 'sarnrec_2p', B), processes=2)
    single = _train(root, _video_opt(root, 'sarnrec_1p', 2 * B))
    other = _train(root, _video_opt(root, 'sarnrec_1p_small_batch', B))
    _assert_equivalent(root, TINY_SARN_RECURRENT, ddp, single, other)


def _restore(weights, lq_path):
    """The tiny SVDN with ``weights`` on one image, in this process (one thread, as the runs), as uint8 BGR."""
    import deblurzoo  # noqa: F401  (registers the archs)
    from basicsr.archs import build_network
    from basicsr.utils import img2tensor, tensor2img
    net = build_network(dict(TINY_SVDN))
    net.load_state_dict(weights)
    net.eval()
    lq = img2tensor(cv2.imread(lq_path).astype(np.float32) / 255., bgr2rgb=True, float32=True)[None]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return tensor2img([net(lq)])
    finally:
        torch.set_num_threads(threads)


def test_validation_counts_every_image_once(root, image_runs):
    from basicsr.metrics import calculate_psnr
    gopro = root / 'GOPRO_Large' / 'test'
    pairs = sorted(osp.join(seq, osp.splitext(f)[0]) for seq in VAL_SEQS for f in os.listdir(gopro / seq / 'blur'))
    assert len(pairs) == 5
    logged = {}
    for name in ('svdn_2p', 'svdn_1p'):
        weights = torch.load(root / 'experiments' / name / 'models' / 'net_g_latest.pth', weights_only=True)['params']
        vis = root / 'experiments' / name / 'visualization' / 'val'
        saved = sorted(osp.join(seq, f) for seq in os.listdir(vis) for f in os.listdir(vis / seq))
        assert [p.rsplit('_', 1)[0] for p in saved] == pairs, saved  # every validation pair, once
        scores = []
        for path in saved:  # <seq>/<frame>_<iter>.png: the restored <seq>/blur/<frame>.png
            seq, frame = osp.dirname(path), osp.basename(path).rsplit('_', 1)[0]
            restored = _restore(weights, str(gopro / seq / 'blur' / f'{frame}.png'))
            assert np.array_equal(cv2.imread(str(vis / path)), restored), path  # what one process restores
            scores.append(calculate_psnr(restored, cv2.imread(str(gopro / seq / 'sharp' / f'{frame}.png')), 0))
        mean = np.mean(scores)
        for i in range(5):  # an image counted twice or dropped moves the mean by far more than the log's precision
            assert abs(np.mean(scores + [scores[i]]) - mean) > 1e-3 and abs(np.mean(scores[:i] + scores[i + 1:]) -
                                                                            mean) > 1e-3, scores
        values = [float(v) for v in re.findall(r'# psnr: (\d+\.\d+)', _log(root, name))]
        assert len(values) == 1, values  # validated once, after training
        assert values[0] == pytest.approx(mean, abs=6e-5), (name, values, scores)  # logged with 4 decimals
        logged[name] = values[0]
    # the runs' weights differ by float rounding only (test_image_model_ddp_equals_single_process)
    assert logged['svdn_2p'] == pytest.approx(logged['svdn_1p'], abs=1e-2)


def _children(pid):
    """Ids of the processes whose parent is ``pid`` (from /proc/<id>/stat: no psutil here)."""
    children = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()  # after "<pid> (<command>)": state, ppid, ...
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry))
    return children


def _rank_of(pid):
    """The RANK in the environment of process ``pid`` (torchrun's workers have one)."""
    try:
        with open(f'/proc/{pid}/environ', 'rb') as f:
            env = dict(item.split(b'=', 1) for item in f.read().split(b'\0') if b'=' in item)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(env[b'RANK']) if b'RANK' in env else None


def test_torchrun_restarts_a_killed_worker_and_resumes(root):
    total, every = 60, 10  # the kill lands soon after the first state, with ~50 iterations to go
    name = 'svdn_restart'
    opt = _image_opt(root, name, B, validate=False)
    opt['train']['total_iter'] = opt['train']['scheduler']['total_iter'] = total
    opt['logger']['save_checkpoint_freq'] = every
    path = _write(root, opt, f'train_{name}.yml')
    exp = root / 'experiments' / name
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--max-restarts=1',
           f'--master_port={_free_port()}',
           'deblurzoo/train.py', '-opt', path, '--launcher', 'pytorch', '--auto_resume']
    env = _env()
    output = root / f'{name}.out'
    with open(output, 'w') as out:  # a file, not a pipe: nobody reads a pipe while this waits
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f'torchrun ended before the kill:\n{output.read_text()[-4000:]}'
            assert time.monotonic() < deadline, f'no training state after 120 s:\n{output.read_text()[-4000:]}'
            # the first state is complete once rank 0 logs the next iteration
            if (exp / 'training_states' / f'{every}.state').is_file() and \
                    re.search(rf'iter:\s+{every + 1},', _log(root, name)):
                break
            time.sleep(0.05)
        workers = {_rank_of(pid): pid for pid in _children(proc.pid)}
        assert set(workers) == {0, 1}, workers
        os.kill(workers[1], signal.SIGKILL)
        try:
            proc.wait(timeout=60)  # restarted workers that hang in init_process_group would wait for 30 minutes
        except subprocess.TimeoutExpired:
            pytest.fail(f'no end 60 s after the kill:\n{output.read_text()[-4000:]}')
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun's session: it and its workers
            proc.wait()
    out = output.read_text()
    assert proc.returncode == 0, out[-4000:]
    log = _log(root, name)
    resumed = [int(k) for k in re.findall(r'Resuming training from epoch: \d+, iter: (\d+)', log)]
    assert len(resumed) == 1 and resumed[0] >= every, (resumed, out[-4000:])  # restarted once, from a state
    assert re.search(rf'iter:\s+{total},', log)
    assert 'net_g_latest.pth' in os.listdir(exp / 'models')
    assert f'{total}.state' in os.listdir(exp / 'training_states')
