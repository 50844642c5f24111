"""scripts/benchmark.py on tiny models: the tables, the MAC counts, the error messages and the checkpoint scores."""
import json

import cv2
import numpy as np
import pytest
import torch
import yaml

import deblurzoo  # noqa: F401  (registers everything; patches BasicSR first)
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr, calculate_ssim
from data_factory import load_script
from test_registry import ARCHS, TINY

bench = load_script('benchmark')
FAST = ['--threads', '1']  # tiny nets run many tiny ops: one thread is much faster (and steadier) than several


def _tiny_kwargs(archs):
    missing = [a for a in archs if a not in TINY]
    assert not missing, f'add tiny kwargs for {missing} to TINY in tests/test_registry.py'
    return [arg for a in archs for arg in ('--kwargs', f'{a}={json.dumps(TINY[a])}')]


def _read(out):
    with open(f'{out}.json') as f:
        return open(f'{out}.md').read(), json.load(f)


def test_every_registered_arch_gets_a_row_with_costs_timing_and_notes(tmp_path, capsys):
    assert bench.registered_archs() == ARCHS
    out, threads = str(tmp_path / 'bench'), torch.get_num_threads()
    bench.main(_tiny_kwargs(ARCHS) + ['--sizes', '16x16', '--repeats', '1', '--no-isolate', '--out', out] + FAST)
    md, report = _read(out)
    printed = capsys.readouterr().out
    assert set(report['archs']) == set(ARCHS)
    for arch in ARCHS:
        res = report['archs'][arch]
        assert 'error' not in res, res.get('error')
        assert res['params'] > 0
        entry = res['macs']['16x16'][res['default_policy']]
        assert entry['macs_per_frame'] > 0 and entry['not_counted'], arch  # every net does some uncounted arithmetic
        assert res['latency']['median_s'] > 0 and res['latency']['peak_memory_bytes'] > 0
        assert res['stack']['convs'] == 1 and res['flop_efficiency'] > 0  # tiny nets: fewer MACs than one conv
        assert f'| {arch} | ' in md  # a row in the main table (and in the papers' table)
        assert f'  - {arch}: not counted: ' in md
        assert f'{arch}: ' in printed  # the line per finished arch
    assert report['archs']['SAPHNet']['default_policy'] == 'greedy'
    assert set(report['archs']['SAPHNet']['macs']['16x16']) == {'uniform', 'greedy'}
    assert report['archs']['SVDN']['paper']['size'] == '3.1 MB'
    assert 'MACs @16x16 (G)' in md and 'FLOP-efficiency' in md and '## What the papers state' in md
    assert f"torch {torch.__version__}" in md and '1 torch threads' in md and report['machine']['threads'] == 1
    assert torch.get_num_threads() == threads  # restored


def test_macs_match_a_hand_count_and_scale_with_pixels(tmp_path):
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert bench.model_cost.count_cost(conv, torch.rand(1, 3, 10, 12))['macs'] == 3 * 8 * 9 * 10 * 12
    stack = bench.conv_stack(2)
    assert bench.model_cost.count_cost(stack, torch.rand(1, 64, 8, 6))['macs'] == 2 * bench.conv_macs(8, 6)
    out = str(tmp_path / 'scale')
    archs = ['SVDN', 'AtrousNet']  # convolutions only: MACs proportional to pixels at sizes their padding keeps
    bench.main(['--archs', *archs, *_tiny_kwargs(archs), '--sizes', '16x16', '64x32', '--skip-latency',
                '--no-isolate', '--out', out])
    _, report = _read(out)
    for arch in archs:
        macs = report['archs'][arch]['macs']
        assert macs['64x32']['default']['macs_per_frame'] == 8 * macs['16x16']['default']['macs_per_frame']
        assert macs['64x32']['default']['counted_on'] == 'meta'
        assert 'latency' not in report['archs'][arch]


def test_isolated_workers_report_a_failing_arch_and_go_on(tmp_path, capsys):
    out = str(tmp_path / 'iso')
    bench.main(['--archs', 'SVDN', 'MLFANet', *_tiny_kwargs(['SVDN']), '--kwargs', 'MLFANet={"num_frame": 2}',
                '--sizes', '16x16', '--repeats', '1', '--out', out] + FAST)
    md, report = _read(out)
    svdn, mlfa = report['archs']['SVDN'], report['archs']['MLFANet']
    assert svdn['step'] == 'done' and svdn['peak_rss_bytes'] > 0 and svdn['flop_efficiency'] > 0
    assert 'num_frame must be odd' in mlfa['error'] and "step 'build'" in mlfa['error']
    assert '**failed: ' in md and 'Peak RSS' in md
    printed = capsys.readouterr().out
    assert 'SVDN: forward 1/1 at 16x16' in printed  # the worker's progress, relayed
    assert 'MLFANet: FAILED' in printed


@pytest.mark.parametrize('argv,message', [
    (['--archs', 'NoSuchNet'], 'unknown arch NoSuchNet; registered deblurzoo archs: AtrousNet'),
    (['--archs', 'SVDN', '--kwargs', 'SVDN={num_feat: 8}'], '--kwargs SVDN: not valid JSON'),
    (['--archs', 'SVDN', '--kwargs', 'SVDN={"width": 8}'], "--kwargs SVDN (SVDN): unknown key(s) 'width'"),
    (['--archs', 'SVDN', '--kwargs', 'SARN={}'], '--kwargs SARN: not among the archs benchmarked'),
    (['--archs', 'SVDN', '--kwargs', 'SVDN'], "write NAME='{json}'"),
    (['--sizes', '256'], 'write WIDTHxHEIGHT'),
    (['--archs', 'SVDN', '--checkpoint', 'SVDN=x.pth'], '--checkpoint needs --data'),
])
def test_bad_arguments_say_what_is_wrong(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(argv + ['--out', str(tmp_path / 'x')])
    assert message in capsys.readouterr().err


def _paired_folder(root):
    """Two 24x32 blurry/sharp PNG pairs, one in a subfolder (pairs are matched by relative path)."""
    rng = np.random.default_rng(0)
    pairs = []
    for rel in ('a.png', 'seq/b.png'):
        sharp = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        blur = cv2.blur(sharp, (5, 5))
        for folder, img in (('blur', blur), ('sharp', sharp)):
            (root / folder / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / folder / rel), img)
        pairs.append((blur.astype(np.float64), sharp.astype(np.float64)))
    return pairs


def test_checkpoints_get_psnr_and_ssim_on_paired_folders(tmp_path):
    pairs = _paired_folder(tmp_path)
    network = {'type': 'SVDN', **TINY['SVDN']}
    torch.manual_seed(0)
    ckpt = tmp_path / 'svdn.pth'
    torch.save({'params': build_network(dict(network)).state_dict()}, ckpt)  # untrained SVDN returns its input
    opt = tmp_path / 'test_svdn.yml'
    opt.write_text(yaml.safe_dump({'network_g': network, 'path': {'pretrain_network_g': str(ckpt)}}))
    out = str(tmp_path / 'ckpt')
    bench.main(['--archs', '--checkpoint', str(opt), '--checkpoint', f'{opt}={ckpt}', '--checkpoint',
                'SVDN=' + str(ckpt), '--data', str(tmp_path / 'blur'), str(tmp_path / 'sharp'), '--out', out])
    md, report = _read(out)
    assert report['archs'] == {}
    ok, same, wrong = report['checkpoints']
    expect_psnr = np.mean([calculate_psnr(b, s, crop_border=0) for b, s in pairs])
    expect_ssim = np.mean([calculate_ssim(b, s, crop_border=0) for b, s in pairs])
    for res in (ok, same):
        assert res['images'] == 2 and res['kind'] == 'image'
        assert res['psnr'] == pytest.approx(expect_psnr, abs=1e-6)
        assert res['ssim'] == pytest.approx(expect_ssim, abs=1e-6)
    assert 'does not fit SVDN' in wrong['error']  # the paper-size SVDN, a tiny checkpoint
    assert '## Checkpoints' in md and f'{expect_psnr:.2f}' in md and '**failed: ' in md


def test_unpaired_folders_name_the_missing_images(tmp_path):
    _paired_folder(tmp_path)
    (tmp_path / 'sharp' / 'seq' / 'b.png').unlink()
    with pytest.raises(FileNotFoundError, match='1 image.*no partner.*seq/b.png'):
        bench.paired_images(str(tmp_path / 'blur'), str(tmp_path / 'sharp'))
