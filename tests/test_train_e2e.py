"""End to end through the real entry points: train from a YAML, checkpoint, --auto_resume, test.py, 2-process torchrun,
and the errors a user gets for a bad option file. Each run is a subprocess of ``deblurzoo/{train,test}.py`` copied under
a temporary root, so ``experiments/``, ``tb_logger/`` and ``results/`` land there, where BasicSR puts them."""
import os
import os.path as osp
import re

import pytest
import torch
import yaml

import data_factory
from train_runner import _copy_entry_points, _free_port, _log, _run, _write

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    """A temporary project root holding the entry points and a tiny GoPro set with flows."""
    root = tmp_path_factory.mktemp('e2e')
    _copy_entry_points(root)
    for split in ('train', 'test'):
        data_factory.make_gopro_tree(str(root / 'GOPRO_Large'), split=split, frames=3, size=(40, 48), with_flow=True)
    return root


def _train_opt(root, name, **train_overrides):
    with open(osp.join(REPO, 'options', 'demo', 'train_svdn_demo.yml')) as f:
        opt = yaml.safe_load(f)
    opt['name'] = name
    opt['datasets']['val']['dataroot'] = str(root / 'GOPRO_Large')
    assert opt['datasets']['train']['type'] == 'MotionBlurSynthDataset'  # the demo trains on synthesised blur
    train_dir = root / 'GOPRO_Large' / 'train'
    opt['datasets']['train']['dataroot'] = [str(train_dir / seq / 'sharp') for seq in sorted(os.listdir(train_dir))]
    # 6 samples an epoch, as many as the tiny GoPro train split has pairs (3 batches of 2: tests count on it)
    opt['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0, num_samples=6)
    opt['network_g'].update(num_feat=8, num_conv=1)
    opt['train']['total_iter'] = 4
    opt['train']['scheduler']['total_iter'] = 4
    opt['train'].update(train_overrides)
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    return opt


def test_train_checkpoint_resume_and_test(root):
    opt = _train_opt(root, 'svdn_e2e')
    opt_path = _write(root, opt, 'train_svdn_e2e.yml')
    run = _run(root, 'deblurzoo/train.py', '-opt', opt_path)
    assert run.returncode == 0, run.stderr[-4000:]
    exp = root / 'experiments' / 'svdn_e2e'
    assert {'net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth'} <= set(os.listdir(exp / 'models'))
    assert {'2.state', '4.state'} <= set(os.listdir(exp / 'training_states'))
    log = _log(root, 'svdn_e2e')
    assert 'l_position' in log and 'l_pix' in log
    assert len(re.findall(r'# psnr: \d+\.\d+', log)) >= 2  # validated at iter 2, 4 and after training
    params = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    assert 'neck.dcn1.weight' in params

    # resume: the same experiment continues from its newest state instead of starting over
    run = _run(root, 'deblurzoo/train.py', '-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=6')
    assert run.returncode == 0, run.stderr[-4000:]
    log = _log(root, 'svdn_e2e')
    assert 'Resuming training from epoch: ' in log and re.search(r'Resuming training from epoch: \d+, iter: 4', log)
    assert re.search(r'Start training from epoch: \d+, iter: 4', log)
    assert re.search(r'iter:\s+5,', log) and re.search(r'iter:\s+6,', log)
    assert '6.state' in os.listdir(exp / 'training_states')
    assert not any(d.startswith('svdn_e2e_archived') for d in os.listdir(root / 'experiments'))

    # test.py evaluates the trained weights and saves one output per pair, per sequence
    test_opt = {
        'name': 'svdn_e2e', 'model_type': 'SVDNModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'test': {'name': 'gopro_test', 'type': 'GoProDataset', 'dataroot': str(root / 'GOPRO_Large'),
                              'split': 'test', 'io_backend': {'type': 'disk'}}},
        'network_g': opt['network_g'],
        'path': {'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth'), 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None, 'metrics': opt['val']['metrics']}
    }
    run = _run(root, 'deblurzoo/test.py', '-opt', _write(root, test_opt, 'test_svdn_e2e.yml'))
    assert run.returncode == 0, run.stderr[-4000:]
    log = _log(root, 'svdn_e2e', prefix='test')
    assert re.search(r'# psnr: \d+\.\d+', log) and re.search(r'# ssim: 0\.\d+', log)
    vis = root / 'results' / 'svdn_e2e' / 'visualization' / 'gopro_test'
    saved = sorted(osp.join(seq, f) for seq in os.listdir(vis) for f in os.listdir(vis / seq))
    assert len(saved) == 6 and len({osp.dirname(s) for s in saved}) == 2  # 2 sequences x 3 frames, no name clash


def test_torchrun_two_processes_on_cpu(root):
    opt = _train_opt(root, 'svdn_ddp')
    opt['train']['total_iter'] = opt['train']['scheduler']['total_iter'] = 2
    opt_path = _write(root, opt, 'train_svdn_ddp.yml')
    run = _run(root, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}',
               'deblurzoo/train.py', '-opt', opt_path, '--launcher', 'pytorch')
    assert run.returncode == 0, run.stderr[-4000:]
    log = _log(root, 'svdn_ddp')
    assert 'World size (gpu number): 2' in log
    assert re.search(r'# psnr: \d+\.\d+', log)
    assert 'net_g_latest.pth' in os.listdir(root / 'experiments' / 'svdn_ddp' / 'models')


@pytest.mark.parametrize('change, message', [
    (lambda o: o['network_g'].update(type='SVDNN'), r"Unknown type 'SVDNN' in the 'arch' registry"),
    (lambda o: o['datasets']['train'].update(use_flow=False), r'position_opt\.loss_weight.*use_flow'),
    (lambda o: o['datasets']['train'].update(dataroot='/nonexistent/GOPRO_Large'), r'/nonexistent/GOPRO_Large'),
    (lambda o: o['train']['scheduler'].update(type='Poly'), r"train\.scheduler\.type: unknown 'Poly'"),
])
def test_bad_option_file_gives_clear_error(root, change, message):
    opt = _train_opt(root, 'svdn_bad')
    change(opt)
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, opt, 'train_svdn_bad.yml'))
    assert run.returncode != 0
    assert re.search(message, run.stderr), run.stderr[-3000:]


def test_saphnet_trains_through_both_phases(root):
    """The SAPHNet demo option, shrunk: uniform sampling for 2 iterations (no reward loss), then samplers and network
    jointly (both samplers' REINFORCE terms logged); validation runs in each phase and test.py evaluates the result."""
    with open(osp.join(REPO, 'options', 'demo', 'train_saphn_demo.yml')) as f:
        opt = yaml.safe_load(f)
    opt['name'] = 'saphn_e2e'
    for phase in ('train', 'val'):
        opt['datasets'][phase]['dataroot'] = str(root / 'GOPRO_Large')
    opt['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1)
    opt['network_g'].update(num_feat=4, sampler_feat=4)
    opt['train'].update(total_iter=4, pretrain_iter=2)
    opt['train']['scheduler']['periods'] = [4]
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, opt, 'train_saphn_e2e.yml'))
    assert run.returncode == 0, run.stderr[-4000:]
    lines = {int(m.group(1)): line for line in _log(root, 'saphn_e2e').splitlines()
             for m in [re.search(r'iter:\s+(\d+),', line)] if m}
    assert sorted(lines) == [1, 2, 3, 4]
    for it in (1, 2):
        assert 'l_pix_stage1' in lines[it] and 'l_reward' not in lines[it], lines[it]
    for it in (3, 4):
        assert 'l_reward_1' in lines[it] and 'l_reward_2' in lines[it], lines[it]
    assert _log(root, 'saphn_e2e').count('Validation') >= 2

    with open(osp.join(REPO, 'options', 'demo', 'test_saphn_demo.yml')) as f:
        test_opt = yaml.safe_load(f)
    test_opt['name'] = 'saphn_e2e'
    test_opt['datasets']['test']['dataroot'] = str(root / 'GOPRO_Large')
    test_opt['network_g'].update(num_feat=4, sampler_feat=4)
    test_opt['path']['pretrain_network_g'] = str(root / 'experiments' / 'saphn_e2e' / 'models' / 'net_g_latest.pth')
    run = _run(root, 'deblurzoo/test.py', '-opt', _write(root, test_opt, 'test_saphn_e2e.yml'))
    assert run.returncode == 0, run.stderr[-4000:]
    assert re.search(r'psnr: \d+\.\d+', _log(root, 'saphn_e2e', prefix='test'))


def _video_opt(root, name, arch):
    """The recurrent-SARN demo option on the tiny DVD tree (DVD's folder names, 61/10 split by the shipped meta info),
    shrunk; ``arch`` SARNMulti trains on 5-frame windows supervised at their centre."""
    with open(osp.join(REPO, 'options', 'demo', 'train_sarnrecurrent_demo.yml')) as f:
        opt = yaml.safe_load(f)
    data_root = data_factory.make_dvd_tree(str(root / 'dvd'), frames=4)
    opt['name'] = name
    for phase, partition in (('train', 'train'), ('val', 'test')):
        opt['datasets'][phase].update(dataroot=data_root, lq_folder='input', gt_folder='GT', partition=partition)
    opt['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1,
                                    num_frame=3)
    opt['network_g'].update(num_feat=4, num_block=1, lstm_feat=4)
    if arch == 'SARNMulti':
        opt['datasets']['train'].update(num_frame=5, center_frame_only=True)
        opt['network_g'] = dict(type='SARNMulti', num_frame=5, num_feat=4, num_block=1)
        data_factory.make_dvd_tree(str(root / 'dvd'), seqs=data_factory.DVD_TRAIN_SEQS, frames=6)  # 5-frame windows
    opt['train']['total_iter'] = opt['train']['scheduler']['total_iter'] = 2
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    return opt


def _sequence_scores(log):
    """{sequence: psnr} of the last video validation in ``log`` (BasicSR's per-folder lines)."""
    block = log[log.rindex('Validation'):]
    line = next(line for line in block.splitlines() if '# psnr:' in line)
    return {name: float(value) for name, value in re.findall(r'# (\S+): (\d+\.\d+)', line) if name != 'psnr'}


@pytest.mark.parametrize('arch', ['SARNRecurrent', 'SARNMulti'])
def test_video_model_trains_validates_and_tests_on_dvd(root, arch):
    """VideoDeblurModel on DVD clips: 2 iterations, validation over the 10 test sequences (scores per sequence), then
    test.py restores every frame of every test sequence and saves it under its sequence."""
    name = f'{arch.lower()}_e2e'
    opt = _video_opt(root, name, arch)
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, opt, f'train_{name}.yml'))
    assert run.returncode == 0, run.stderr[-4000:]
    log = _log(root, name)
    assert re.search(r'iter:\s+2,', log) and 'l_pix' in log
    assert set(_sequence_scores(log)) == set(data_factory.DVD_TEST_SEQS)

    with open(osp.join(REPO, 'options', 'demo', 'test_sarnrecurrent_demo.yml')) as f:
        test_opt = yaml.safe_load(f)
    test_opt['name'] = name
    test_opt['datasets']['test'].update(opt['datasets']['val'])
    test_opt['network_g'] = opt['network_g']
    test_opt['path']['pretrain_network_g'] = str(root / 'experiments' / name / 'models' / 'net_g_latest.pth')
    run = _run(root, 'deblurzoo/test.py', '-opt', _write(root, test_opt, f'test_{name}.yml'))
    assert run.returncode == 0, run.stderr[-4000:]
    assert set(_sequence_scores(_log(root, name, prefix='test'))) == set(data_factory.DVD_TEST_SEQS)
    vis = root / 'results' / name / 'visualization' / opt['datasets']['val']['name']
    assert sorted(os.listdir(vis)) == sorted(data_factory.DVD_TEST_SEQS)
    assert all(len(os.listdir(vis / seq)) == 4 for seq in data_factory.DVD_TEST_SEQS)


def test_video_validation_with_two_processes(root):
    """BasicSR's video validation split over 2 gloo processes (sequences shared out, per-frame scores reduced) gives
    the single-process scores (learning rate 0: both runs validate the same seeded weights)."""
    opt = _video_opt(root, 'sarnrec_ddp', 'SARNRecurrent')
    opt['train']['total_iter'] = opt['train']['scheduler']['total_iter'] = 1
    opt['train']['optim_g']['lr'] = opt['train']['scheduler']['eta_min'] = 0
    opt['val']['val_freq'] = 1
    single = _run(root, 'deblurzoo/train.py', '-opt', _write(root, dict(opt, name='sarnrec_1p'), 'train_1p.yml'))
    assert single.returncode == 0, single.stderr[-4000:]
    run = _run(root, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}',
               'deblurzoo/train.py', '-opt', _write(root, opt, 'train_sarnrec_ddp.yml'), '--launcher', 'pytorch')
    assert run.returncode == 0, run.stderr[-4000:]
    assert 'World size (gpu number): 2' in _log(root, 'sarnrec_ddp')
    scores = _sequence_scores(_log(root, 'sarnrec_ddp'))
    assert set(scores) == set(data_factory.DVD_TEST_SEQS)
    assert scores == _sequence_scores(_log(root, 'sarnrec_1p'))


def _demo_opt(filename, name):
    with open(osp.join(REPO, 'options', 'demo', filename)) as f:
        opt = yaml.safe_load(f)
    opt['name'] = name
    return opt


TINY_ATROUS = dict(num_feat=4, num_block=1, block_feat=8, branch_feat=4)
TINY_MLFA = dict(num_feat=4, num_level=2, num_block=1)


def test_two_stage_demo_options_train_stage1_then_stage2_and_test(root):
    """The demo's order on tiny data: AtrousNet trained by train.py (GoPro layout), then MLFANet on its frozen outputs
    (TwoStageVideoModel, DVD-layout clips, validation per sequence), then test.py for stage 1 scored per sequence
    (val.per_frame) and for both stages."""
    stage1 = _demo_opt('train_atrousnet_demo.yml', 'atrous_e2e')
    for phase in ('train', 'val'):
        stage1['datasets'][phase]['dataroot'] = str(root / 'GOPRO_Large')
    stage1['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1)
    stage1['network_g'].update(TINY_ATROUS)
    stage1['train']['total_iter'] = stage1['train']['scheduler']['total_iter'] = 2
    stage1['val']['val_freq'] = 2
    stage1['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, stage1, 'train_atrous_e2e.yml'))
    assert run.returncode == 0, run.stderr[-4000:]
    ckpt = str(root / 'experiments' / 'atrous_e2e' / 'models' / 'net_g_latest.pth')

    data_root = data_factory.make_dvd_tree(str(root / 'dvd'), frames=4)
    stage2 = _demo_opt('train_mlfa_demo.yml', 'mlfa_e2e')
    for phase, partition in (('train', 'train'), ('val', 'test')):
        stage2['datasets'][phase].update(dataroot=data_root, lq_folder='input', gt_folder='GT', partition=partition)
    stage2['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1)
    stage2['network_stage1'].update(TINY_ATROUS)
    stage2['network_g'].update(TINY_MLFA)
    stage2['path']['pretrain_network_stage1'] = ckpt
    stage2['train']['total_iter'] = stage2['train']['scheduler']['total_iter'] = 2
    stage2['val']['val_freq'] = 2
    stage2['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    run = _run(root, 'deblurzoo/train.py', '-opt', _write(root, stage2, 'train_mlfa_e2e.yml'))
    assert run.returncode == 0, run.stderr[-4000:]
    log = _log(root, 'mlfa_e2e')
    assert re.search(r'iter:\s+2,', log) and 'l_pix' in log
    assert set(_sequence_scores(log)) == set(data_factory.DVD_TEST_SEQS)

    for filename, name, updates in (
        ('test_atrousnet_demo.yml', 'atrous_seq_e2e', {'network_g': TINY_ATROUS, 'pretrain_network_g': ckpt}),
        ('test_mlfa_demo.yml', 'mlfa_e2e', {'network_stage1': TINY_ATROUS, 'network_g': TINY_MLFA,
                                            'pretrain_network_stage1': ckpt, 'pretrain_network_g': str(
                                                root / 'experiments' / 'mlfa_e2e' / 'models' / 'net_g_latest.pth')}),
    ):
        test_opt = _demo_opt(filename, name)
        test_opt['datasets']['test'].update(stage2['datasets']['val'])
        for key, value in updates.items():
            if key.startswith('network'):
                test_opt[key].update(value)
            else:
                test_opt['path'][key] = value
        run = _run(root, 'deblurzoo/test.py', '-opt', _write(root, test_opt, f'test_{name}.yml'))
        assert run.returncode == 0, run.stderr[-4000:]
        assert set(_sequence_scores(_log(root, name, prefix='test'))) == set(data_factory.DVD_TEST_SEQS)
