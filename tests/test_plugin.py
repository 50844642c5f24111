"""BasicSR's own entry points find deblurzoo: ``python -m basicsr.train``/``basicsr.test`` with no ``import deblurzoo``
in user code, through the start-up hook installed with the package (``deblurzoo-autoload.pth`` -> ``deblurzoo_autoload``).

Where deblurzoo is installed (``scripts/setup_env.sh``), the subprocesses run ``python -m basicsr.<entry>`` exactly so;
where it is only on ``PYTHONPATH`` they import the hook first, as the ``.pth`` line does, then run the same module as
``__main__``. The hook registers only: a run through BasicSR's entry points gets BasicSR's trainer.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

import data_factory
import deblurzoo  # noqa: F401
from basicsr.archs import build_network
from deblurzoo import compat
from test_train_e2e import REPO, TINY_ATROUS, TINY_MLFA, _train_opt
from train_runner import _env, _log, _write

pytestmark = pytest.mark.slow

HEAVY = ('torch', 'cv2', 'numpy', 'basicsr', 'deblurzoo')


def _python(*args, env=None, cwd=None, timeout=600):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env or _env(), cwd=cwd,
                          timeout=timeout)


def _hook_installed():
    out = _python('-c', "import sys; print('deblurzoo_autoload' in sys.modules)")
    return out.stdout.strip() == 'True'


def _entry(module, *args):
    """``-m module args`` as a user runs it (the hook loaded at start-up by the installed .pth)."""
    if _hook_installed():
        return ['-m', module, *args]
    return ['-c', f"import deblurzoo_autoload, runpy; runpy.run_module('{module}', run_name='__main__', "
            'alter_sys=True)', *args]


def test_interpreter_start_imports_nothing_heavy():
    """A Python process that never imports BasicSR pays for the hook only: no torch, OpenCV, NumPy or deblurzoo."""
    for code in ('import sys, json', 'import sys, json, deblurzoo_autoload'):
        out = _python('-c', f'{code}; print(json.dumps(sorted(sys.modules)))')
        assert out.returncode == 0, out.stderr[-2000:]
        modules = set(json.loads(out.stdout))
        assert not {m for m in modules for h in HEAVY if m == h or m.startswith(h + '.')}, code


@pytest.mark.parametrize('off', ['', '1'])
def test_importing_basicsr_registers_deblurzoo_unless_turned_off(off):
    script = textwrap.dedent("""
        import sys, deblurzoo_autoload
        if deblurzoo_autoload.BasicSRFinder not in sys.meta_path:  # off: BasicSR needs its import fix by hand
            deblurzoo_autoload.add_functional_tensor_shim()
        import basicsr.archs
        from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
        from basicsr.models.base_model import BaseModel
        print('deblurzoo' in sys.modules, 'SAPHNet' in ARCH_REGISTRY._obj_map,
              'REDSDeblurDataset' in DATASET_REGISTRY._obj_map, 'SVDNModel' in MODEL_REGISTRY._obj_map,
              BaseModel.save_network.__module__)
    """)
    out = _python('-c', script, env=dict(_env(), DEBLURZOO_NO_AUTOLOAD=off))
    assert out.returncode == 0, out.stderr[-3000:]
    on = str(not off)
    assert out.stdout.split() == [on, on, on, on, 'basicsr.models.base_model']


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    """A project folder holding only option files and a tiny GoPro set (with flows), DVD and REDS sets."""
    root = tmp_path_factory.mktemp('plugin')
    for split in ('train', 'test'):
        data_factory.make_gopro_tree(str(root / 'GOPRO_Large'), split=split, frames=3, size=(40, 48), with_flow=True)
    (root / 'dvd_root.txt').write_text(data_factory.make_dvd_tree(str(root / 'dvd'), frames=6))
    for split in ('train', 'val'):
        data_factory.make_reds_tree(str(root / 'REDS'), num_frames=4, split=split)
    return root


def test_basicsr_train_and_test_use_deblurzoo_with_basicsrs_trainer(root):
    """The SVDN demo option through BasicSR's own scripts, from a project folder: BasicSR's trainer (its epoch count,
    none of deblurzoo's trainer extensions), experiments/, tb_logger/ and results/ in the working directory (never in
    site-packages, where an installed BasicSR's scripts would put them), and BasicSR's tester evaluates the result."""
    opt = _train_opt(root, 'plugin_svdn')
    opt['logger']['use_tb_logger'] = True
    run = _python(*_entry('basicsr.train', '-opt', _write(root, opt, 'train_plugin_svdn.yml')), cwd=root)
    assert run.returncode == 0, run.stderr[-4000:]
    log = _log(root, 'plugin_svdn')
    assert 'Require iter number per epoch' in log and 'Training batches per epoch' not in log  # BasicSR's loop
    assert 'l_position' in log and {'net_g_4.pth', 'net_g_latest.pth'} <= set(
        os.listdir(root / 'experiments' / 'plugin_svdn' / 'models'))
    assert os.listdir(root / 'tb_logger' / 'plugin_svdn')
    site_root = compat.installed_root()
    if site_root is not None:
        assert 'working directory' in run.stdout
        assert not osp.exists(osp.join(site_root, 'experiments', 'plugin_svdn'))
        assert not osp.exists(osp.join(site_root, 'tb_logger', 'plugin_svdn'))

    with open(osp.join(REPO, 'options', 'demo', 'test_svdn_demo.yml')) as f:
        test_opt = yaml.safe_load(f)
    test_opt['name'] = 'plugin_svdn'
    for dataset in test_opt['datasets'].values():  # the demo test split, and its sharp frames as input
        dataset['dataroot'] = str(root / 'GOPRO_Large')
    test_opt['network_g'].update(opt['network_g'])
    test_opt['path']['pretrain_network_g'] = str(root / 'experiments' / 'plugin_svdn' / 'models' / 'net_g_latest.pth')
    run = _python(*_entry('basicsr.test', '-opt', _write(root, test_opt, 'test_plugin_svdn.yml')), cwd=root)
    assert run.returncode == 0, run.stderr[-4000:]
    assert 'psnr' in _log(root, 'plugin_svdn', prefix='test')
    assert os.listdir(root / 'results' / 'plugin_svdn' / 'visualization')


# ------------------------------------------------------------------------------------------ every shipped option file

TINY_NETS = {'SVDN': dict(num_feat=8, num_conv=1), 'SARN': dict(num_feat=4, num_block=1),
             'SARNMulti': dict(num_feat=4, num_block=1), 'SARNRecurrent': dict(num_feat=4, num_block=1, lstm_feat=4),
             'AtrousNet': TINY_ATROUS, 'MLFANet': TINY_MLFA,
             'SAPHNet': dict(num_feat=4, sampler_feat=4, num_block=[1, 1, 1])}
TRAIN_FILES = sorted(osp.relpath(osp.join(d, f), REPO) for d in (osp.join(REPO, 'options'), osp.join(REPO, 'options',
                     'demo')) for f in os.listdir(d) if f.startswith('train_') and f.endswith('.yml'))


def _tiny(rel, root, name):
    """The option file ``rel`` with tiny nets, the tiny data sets, one iteration and no validation (a two-stage model's
    first stage: tiny weights saved for it)."""
    with open(osp.join(REPO, rel)) as f:
        opt = yaml.safe_load(f)
    opt['name'] = name
    for key in [k for k in opt if k.startswith('network_')]:
        opt[key].update(TINY_NETS[opt[key]['type']])
    frames = 5 if opt['network_g']['type'] == 'SARNMulti' else 3
    for phase, data in opt['datasets'].items():
        if data['type'] == 'GoProDataset':
            data['dataroot'] = str(root / 'GOPRO_Large')
        elif data['type'] == 'MotionBlurSynthDataset':  # the sharp frames as sources
            train_dir = root / 'GOPRO_Large' / 'train'
            data['dataroot'] = [str(train_dir / seq / 'sharp') for seq in sorted(os.listdir(train_dir))]
        elif data['type'].startswith('DVD'):
            data.update(dataroot=(root / 'dvd_root.txt').read_text(), lq_folder='input', gt_folder='GT',
                        partition='train' if phase == 'train' else 'test')
        elif data['type'].startswith('REDS'):
            split = 'train' if phase == 'train' else 'val'
            data.update(dataroot_lq=str(root / 'REDS' / f'{split}_blur'),
                        dataroot_gt=str(root / 'REDS' / f'{split}_sharp'))
        else:
            raise AssertionError(f'{rel}: no tiny data set for {data["type"]}; add one here')
        if phase == 'train':
            data.update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1)
            if 'num_frame' in data and data['num_frame'] > 1:
                data['num_frame'] = frames
    train = opt['train']
    train['total_iter'] = 1
    for key, value in (('total_iter', 1), ('periods', [1])):
        if key in train['scheduler']:
            train['scheduler'][key] = value
    for loss in (v for k, v in train.items() if k.endswith('_opt') and isinstance(v, dict)):
        if loss['type'] == 'VGGPerceptualLoss':
            loss['pretrained'] = False  # no ImageNet weights on test machines
    if 'pretrain_network_stage1' in opt['path']:
        stage1 = opt['path']['pretrain_network_stage1'] = str(root / f'{name}_stage1.pth')
        torch.save({'params': build_network(opt['network_stage1']).state_dict()}, stage1)
    if opt.get('val'):
        opt['val']['val_freq'] = 10 ** 6
    opt['logger'].update(print_freq=1, save_checkpoint_freq=10 ** 6, use_tb_logger=False)
    return opt


RUN_ALL = '''
import json, os, runpy, sys
import deblurzoo_autoload  # what deblurzoo-autoload.pth does at start-up
for entry, path in json.load(open(sys.argv[1])):
    sys.argv = [entry, '-opt', path]
    if entry == 'basicsr.train':  # python -m basicsr.train: BasicSR's script as __main__
        runpy.run_module('basicsr.train', run_name='__main__', alter_sys=True)
    else:  # python deblurzoo/train.py
        import deblurzoo
        from basicsr.train import train_pipeline
        with deblurzoo.trainer_extensions():
            train_pipeline(os.getcwd())
    print('trained', path, flush=True)
'''


def test_every_shipped_train_option_trains_through_basicsr_and_deblurzoo(root):
    """Each ``options/**/train_*.yml``, shrunk, for one iteration through BasicSR's ``basicsr.train`` script (registered
    by the hook alone) and through deblurzoo's pipeline (with the trainer extensions); one process runs them all."""
    jobs = []
    for rel in TRAIN_FILES:
        stem = osp.splitext(osp.basename(rel))[0]
        for entry in ('basicsr.train', 'deblurzoo'):
            name = f'{stem}_{entry.split(".")[0]}'
            jobs.append((entry, _write(root, _tiny(rel, root, name), f'{name}.yml'), name))
    with open(root / 'jobs.json', 'w') as f:
        json.dump([(entry, path) for entry, path, _ in jobs], f)
    run = _python('-c', RUN_ALL, str(root / 'jobs.json'), cwd=root, timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    for entry, path, name in jobs:
        models = root / 'experiments' / name / 'models'
        assert osp.isdir(models) and 'net_g_latest.pth' in os.listdir(models), (entry, path)
