"""Each BasicSR 1.4.2 fix in deblurzoo.compat, proven on this (GPU-less) machine; and that ``import deblurzoo`` changes
nothing else in BasicSR, while the behaviour changes (clearer registry errors, resume fallbacks) come with
``deblurzoo.trainer_extensions()``."""
import collections
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import deblurzoo
from basicsr.utils.registry import ARCH_REGISTRY
from deblurzoo.option_keys import registered


@pytest.fixture
def extensions():
    """deblurzoo's trainer extensions, enabled for one test."""
    with deblurzoo.trainer_extensions() as ext:
        yield ext


def test_every_patch_is_applied_and_documented():
    assert deblurzoo.compat._applied
    for name in deblurzoo.compat.PATCHES:
        assert getattr(deblurzoo.compat, name).__doc__, name


def test_functional_tensor_shim_lets_basicsr_import():
    import basicsr.data.degradations as degradations  # imports torchvision.transforms.functional_tensor
    from torchvision.transforms.functional import rgb_to_grayscale
    assert degradations.rgb_to_grayscale is rgb_to_grayscale


def test_unknown_type_names_the_type_and_lists_registered_names():
    with pytest.raises(KeyError, match=r"Unknown type 'SVDNN' in the 'arch' registry.*Registered:.*SVDN"):
        registered(ARCH_REGISTRY, 'SVDNN')  # what the extensions' option check and builders use


def test_distributed_init_and_ddp_on_cpu(tmp_path):
    """BasicSR's init_dist divides by torch.cuda.device_count() == 0 and asks NCCL; DDP gets CUDA device_ids; the
    process group is destroyed by close_distributed, or at exit when nobody called it."""
    script = textwrap.dedent("""
        import os, socket, torch
        import deblurzoo
        from basicsr.utils import options
        from basicsr.models.base_model import BaseModel
        s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
        os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
        options.init_dist('pytorch')  # the name parse_options calls
        assert torch.distributed.get_backend() == 'gloo', torch.distributed.get_backend()
        model = BaseModel({'num_gpu': 0, 'is_train': True, 'dist': True})
        net = model.model_to_device(torch.nn.Linear(2, 2))
        assert isinstance(net, torch.nn.parallel.DistributedDataParallel) and net.device_ids is None
        net(torch.ones(1, 2)).sum().backward()
        print('OK')
        if CLOSE:  # what deblurzoo/train.py does when the pipeline returns
            from deblurzoo import compat
            compat.close_distributed()
            assert not torch.distributed.is_initialized()
        else:  # left to exit: init_dist registered close_distributed with atexit
            destroy = torch.distributed.destroy_process_group
            def report():
                print('destroyed at exit', flush=True)
                destroy()
            torch.distributed.destroy_process_group = report
    """)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    for close in (True, False):
        out = subprocess.run([sys.executable, '-c', f'CLOSE = {close}\n' + script], capture_output=True, text=True,
                             env=env, timeout=120)
        assert out.returncode == 0 and 'OK' in out.stdout, out.stderr[-3000:]
        assert ('destroyed at exit' in out.stdout) == (not close), out.stdout


def _resume_opt(tmp_path, auto_resume):
    exp = tmp_path / 'experiments' / 'exp'
    return {
        'name': 'exp', 'auto_resume': auto_resume, 'num_gpu': 0, 'network_g': {'type': 'SVDN'},
        'path': {'training_states': str(exp / 'training_states'), 'models': str(exp / 'models'), 'resume_state': None}
    }


def _save_states(opt, iters, networks=None):
    """Training states (and, for ``networks`` (default: all), their network files) as BasicSR saves them."""
    os.makedirs(opt['path']['training_states'])
    os.makedirs(opt['path']['models'])
    for it in iters:
        state = {'epoch': 0, 'iter': it, 'optimizers': [{'t': torch.ones(2)}],
                 'schedulers': [{'milestones': collections.Counter([5])}]}
        torch.save(state, os.path.join(opt['path']['training_states'], f'{it}.state'))
        if networks is None or it in networks:
            torch.save({'params': {}}, os.path.join(opt['path']['models'], f'net_g_{it}.pth'))


def test_auto_resume_falls_back_past_a_state_without_its_network_or_unreadable(tmp_path, capsys, extensions):
    import basicsr.train
    opt = _resume_opt(tmp_path, auto_resume=True)
    _save_states(opt, (4, 6, 8), networks=(4, 6))
    with open(os.path.join(opt['path']['training_states'], '6.state'), 'r+b') as f:
        f.truncate(50)
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 4 and opt['path']['pretrain_network_g'].endswith('net_g_4.pth')
    out = capsys.readouterr().out
    assert re.search(r'skipped a training state: \S+8\.state: its network file\(s\) \S+net_g_8\.pth are missing', out)
    assert re.search(r'skipped a training state: Cannot load the training state \S+6\.state', out)


def test_auto_resume_finds_newest_state_under_experiment_root_and_maps_to_cpu(tmp_path, monkeypatch):
    import basicsr.train
    opt = _resume_opt(tmp_path, auto_resume=True)
    _save_states(opt, (2, 10, 9))  # newest by iteration, not by name order
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # BasicSR looked in ./experiments/<name> relative to the working directory
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 10 and state['optimizers'][0]['t'].device.type == 'cpu'
    assert opt['path']['resume_state'].endswith('10.state')
    assert opt['path']['pretrain_network_g'].endswith('net_g_10.pth')  # check_resume still runs


def test_resume_state_refuses_pickled_code(tmp_path, extensions):
    import basicsr.train
    opt = _resume_opt(tmp_path, auto_resume=False)
    bad = tmp_path / 'evil.state'
    torch.save({'iter': 1, 'payload': collections.OrderedDict, 'f': os.system}, bad)
    opt['path']['resume_state'] = str(bad)
    with pytest.raises(RuntimeError, match='evil.state'):
        basicsr.train.load_resume_state(opt)


def test_missing_resume_state_names_the_path(tmp_path):
    import basicsr.train
    opt = _resume_opt(tmp_path, auto_resume=False)
    opt['path']['resume_state'] = str(tmp_path / 'nope.state')
    with pytest.raises(FileNotFoundError, match='nope.state'):
        basicsr.train.load_resume_state(opt)


@ARCH_REGISTRY.register()
class CompatTestClipNet(nn.Module):
    """A clip-to-clip net for the video-model patches: insists on (b, t, c, h, w)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        assert x.dim() == 5, f'expected a clip (b, t, c, h, w), got {tuple(x.shape)}'
        return x * self.scale


class _Clips(torch.utils.data.Dataset):

    def __init__(self):
        self.opt = {'name': 'clips'}
        self.data_info = {'folder': ['a', 'a', 'a', 'b', 'b']}  # per-frame folders, as BasicSR's video test sets

    def __len__(self):
        return 2

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        t = 3 if i == 0 else 2
        gt = torch.rand(t, 3, 8, 8, generator=g)
        return {'lq': gt * 0.9, 'gt': gt, 'folder': 'ab'[i], 'lq_path': f'{i}'}


def _video_model():
    from basicsr.models.video_recurrent_model import VideoRecurrentModel
    opt = {'num_gpu': 0, 'is_train': False, 'dist': False, 'rank': 0, 'name': 'compat',
           'network_g': {'type': 'CompatTestClipNet'}, 'path': {},
           'val': {'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}}
    return VideoRecurrentModel(opt)


def test_video_feed_data_keeps_batch_axis_after_callers_squeeze():
    model = _video_model()
    data = {'lq': torch.rand(1, 3, 3, 8, 8), 'gt': torch.rand(1, 3, 3, 8, 8)}
    model.feed_data(data)
    data['lq'].squeeze_(0)
    data['gt'].squeeze_(0)
    assert model.lq.shape == (1, 3, 3, 8, 8) and model.gt.shape == (1, 3, 3, 8, 8)


def test_video_validation_metric_buffers_on_model_device():
    model = _video_model()
    loader = torch.utils.data.DataLoader(_Clips())
    model.validation(loader, current_iter=1, tb_logger=None, save_img=False)
    assert {k: v.device.type for k, v in model.metric_results.items()} == {'a': 'cpu', 'b': 'cpu'}
    assert model.metric_results['a'].shape == (3, 1)
    assert torch.all(model.metric_results['a'] > 15)  # 0.9 * gt: a finite, real PSNR per frame


# ---------------------------------------------------------------------------------------------------------------------
# import registers and fixes only; the trainer extensions change BasicSR for the pipeline they wrap
# ---------------------------------------------------------------------------------------------------------------------

REPLACED_BY_EXTENSIONS = ('parse_options', 'load_resume_state', 'make_exp_dirs', 'copy_opt_file',
                          'create_train_val_dataloader', 'EnlargedSampler', 'build_model')


def test_import_alone_leaves_basicsrs_trainer_as_it_is():
    """After ``import deblurzoo`` alone, checkpointing, model building, the sampler and the training pipeline's
    helpers are BasicSR's own."""
    script = textwrap.dedent("""
        import deblurzoo
        import basicsr.archs, basicsr.losses, basicsr.models, basicsr.train
        from basicsr.models.base_model import BaseModel
        from basicsr.data.data_sampler import EnlargedSampler
        from basicsr.utils.registry import Registry
        objs = [BaseModel.save_network, BaseModel.save_training_state, BaseModel.load_network,
                BaseModel.resume_training, basicsr.archs.build_network, basicsr.losses.build_loss,
                basicsr.models.build_model, EnlargedSampler.__iter__, Registry.get]
        objs += [getattr(basicsr.train, name) for name in %r if name != 'load_resume_state']  # (a compat fix)
        print(sorted({obj.__module__ for obj in objs}))
    """ % (REPLACED_BY_EXTENSIONS,))
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert out.returncode == 0, out.stderr[-3000:]
    modules = eval(out.stdout.strip().splitlines()[-1])
    assert all(m.startswith('basicsr') for m in modules), modules


def test_extensions_replace_pipeline_names_only_inside_with():
    import basicsr.test
    import basicsr.train
    from deblurzoo import training
    before = {name: getattr(basicsr.train, name) for name in REPLACED_BY_EXTENSIONS}
    with deblurzoo.trainer_extensions() as ext:
        assert basicsr.train.build_model is training.build_model is basicsr.test.build_model
        assert basicsr.train.EnlargedSampler is training.ResumableSampler
        assert basicsr.train.load_resume_state == ext.load_resume_state
        assert all(getattr(basicsr.train, name) is not before[name] for name in REPLACED_BY_EXTENSIONS)
    assert {name: getattr(basicsr.train, name) for name in REPLACED_BY_EXTENSIONS} == before
    assert basicsr.test.build_model is before['build_model']


def test_extended_model_keeps_the_models_name_and_behaviour():
    from basicsr.models.sr_model import SRModel
    from deblurzoo.training import CheckpointingMixin, extended_model_class
    cls = extended_model_class(SRModel)
    assert cls.__name__ == 'SRModel' and cls.__mro__[1:3] == (CheckpointingMixin, SRModel)
    assert extended_model_class(SRModel) is cls and extended_model_class(cls) is cls


def test_installed_basicsr_scripts_write_under_the_working_directory(tmp_path, monkeypatch):
    """``python -m basicsr.train`` takes its root from site-packages: experiments/, results/ and tb_logger/ go under the
    working directory instead; any other root (a clone, a project's train.py) is kept."""
    from basicsr.utils import options
    site_root = str(tmp_path / 'site-packages')
    monkeypatch.setattr(deblurzoo.compat, 'installed_root', lambda: site_root)
    monkeypatch.chdir(tmp_path)
    assert deblurzoo.compat.relocated(os.path.join(site_root, 'tb_logger', 'x')) == str(tmp_path / 'tb_logger' / 'x')
    assert deblurzoo.compat.relocated(str(tmp_path / 'project')) == str(tmp_path / 'project')
    opt_file = tmp_path / 'o.yml'
    opt_file.write_text('name: n\nnum_gpu: 0\nmanual_seed: 1\ndatasets: {}\npath: {}\n')
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt_file)])
    opt, _ = options.parse_options(site_root, is_train=True)
    assert opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'n')
