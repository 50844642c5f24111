"""Fixes for BasicSR 1.4.2 (the PyPI release) on current torch/torchvision and on machines without GPUs.

Everything here is applied once, by ``import deblurzoo``, before BasicSR is first imported. Each patch replaces one
BasicSR function or method at runtime (never a file in site-packages) and names the upstream problem it answers.
``PATCHES`` lists them; ``tests/test_compat.py`` proves each one.
"""
import collections
import functools
import importlib
import os
import sys
import types
from unittest import mock

import torch

PATCHES = []
_applied = False


def _patch(func):
    PATCHES.append(func.__name__)
    return func


@_patch
def functional_tensor_shim():
    """BasicSR #649: ``basicsr/data/degradations.py`` imports ``torchvision.transforms.functional_tensor``, removed in
    torchvision 0.17, so ``import basicsr`` fails. Provide the one function it uses under the old module name."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        from torchvision.transforms import functional
        shim = types.ModuleType(name)
        shim.rgb_to_grayscale = functional.rgb_to_grayscale
        sys.modules[name] = shim


@_patch
def registry_errors():
    """BasicSR's ``Registry.get`` fails on an unknown name with a bare KeyError (after printing a spurious
    'use name ..._basicsr' line). Name the registry, the unknown ``type:`` and the registered names instead."""
    from basicsr.utils.registry import Registry

    def get(self, name, suffix='basicsr'):
        ret = self._obj_map.get(name)
        if ret is None:
            ret = self._obj_map.get(f'{name}_{suffix}')
        if ret is None:
            known = ', '.join(sorted(self._obj_map))
            raise KeyError(f"Unknown type '{name}' in the '{self._name}' registry (check `type:` in your option file; "
                           f'did you `import deblurzoo`?). Registered: {known}')
        return ret

    Registry.get = get


def _cpu_only():
    return not torch.cuda.is_available() or torch.cuda.device_count() == 0


@_patch
def distributed_init():
    """BasicSR's ``init_dist`` hard-codes NCCL and calls ``torch.cuda.set_device(rank % device_count())``, which divides
    by zero on machines without GPUs. Use gloo there and set a device only when one exists."""
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from basicsr.utils import dist_util, options

    def init_dist(launcher, backend=None, **kwargs):
        if mp.get_start_method(allow_none=True) is None:
            mp.set_start_method('spawn')
        if backend is None or (backend == 'nccl' and _cpu_only()):
            backend = 'gloo' if _cpu_only() else 'nccl'
        if launcher == 'pytorch':
            if not _cpu_only():
                local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
                torch.cuda.set_device(local_rank % torch.cuda.device_count())
            dist.init_process_group(backend=backend, **kwargs)
        elif launcher == 'slurm':
            if _cpu_only():  # its slurm path derives LOCAL_RANK from the GPU count and sets a CUDA device
                with mock.patch('torch.cuda.device_count', return_value=1), mock.patch('torch.cuda.set_device'):
                    dist_util._init_dist_slurm(backend, **kwargs)
            else:
                dist_util._init_dist_slurm(backend, **kwargs)
        else:
            raise ValueError(f'Invalid launcher type: {launcher}')

    dist_util.init_dist = init_dist
    options.init_dist = init_dist  # parse_options imported the name


@_patch
def ddp_on_cpu():
    """``BaseModel.model_to_device`` wraps with ``DistributedDataParallel(device_ids=[torch.cuda.current_device()])``,
    which fails without CUDA; on CPU DDP must get no ``device_ids``."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    from basicsr.models.base_model import BaseModel

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused_parameters = self.opt.get('find_unused_parameters', False)
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net

    BaseModel.model_to_device = model_to_device


def find_resume_state(opt):
    """The newest ``<iter>.state`` under the experiment's ``training_states`` folder, or None."""
    state_dir = opt['path'].get('training_states')
    if not state_dir or not os.path.isdir(state_dir):
        return None
    iters = [int(f[:-len('.state')]) for f in os.listdir(state_dir) if f.endswith('.state') and f[:-6].isdigit()]
    return os.path.join(state_dir, f'{max(iters)}.state') if iters else None


def load_training_state(path, device):
    """Load a training state safely (``weights_only``) onto ``device``; a clear error names a bad file."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file's name
        raise RuntimeError(f'Cannot load the training state {path}: {err}') from err


@_patch
def resume_state():
    """``basicsr.train.load_resume_state`` maps the state with ``storage.cuda(...)`` (fails without CUDA) and
    ``--auto_resume`` looks for states in ``experiments/<name>`` relative to the *working directory* rather than
    the experiment root BasicSR itself writes to. Load onto the model's device and look under
    ``opt['path']['training_states']``. States load with ``weights_only=True``; BasicSR's MultiStepRestartLR keeps
    its milestones in a ``collections.Counter``, allowed here as a safe global."""
    import basicsr.train
    from basicsr.utils import check_resume

    torch.serialization.add_safe_globals([collections.Counter])

    def load_resume_state(opt):
        if opt['auto_resume']:
            path = find_resume_state(opt)
            if path is not None:
                opt['path']['resume_state'] = path
        else:
            path = opt['path'].get('resume_state')
        if path is None:
            return None
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path.resume_state: no training state at '{path}'")
        use_cuda = opt.get('num_gpu', 0) != 0 and not _cpu_only()
        device = torch.device('cuda', torch.cuda.current_device()) if use_cuda else torch.device('cpu')
        state = load_training_state(path, device)
        check_resume(opt, state['iter'])
        return state

    basicsr.train.load_resume_state = load_resume_state


@_patch
def video_metric_buffers():
    """``VideoBaseModel``/``VideoRecurrentModel.dist_validation`` allocate their per-frame metric buffers with
    ``device='cuda'``. Create them on the model's device first; BasicSR then reuses them (it only allocates when the
    attribute is missing)."""
    from basicsr.models.video_base_model import VideoBaseModel
    from basicsr.models.video_recurrent_model import VideoRecurrentModel

    def wrap(original):

        @functools.wraps(original)
        def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
            if self.opt['val'].get('metrics') is not None and not hasattr(self, 'metric_results'):
                counts = collections.Counter(dataloader.dataset.data_info['folder'])
                num_metrics = len(self.opt['val']['metrics'])
                self.metric_results = {
                    folder: torch.zeros(n, num_metrics, dtype=torch.float32, device=self.device)
                    for folder, n in counts.items()
                }
            return original(self, dataloader, current_iter, tb_logger, save_img)

        return dist_validation

    for cls in (VideoBaseModel, VideoRecurrentModel):
        cls.dist_validation = wrap(cls.__dict__['dist_validation'])


@_patch
def video_feed_data_alias():
    """``VideoRecurrentModel.dist_validation`` calls ``feed_data`` and then ``val_data['lq'].squeeze_(0)``. On CPU,
    ``.to(self.device)`` returns the very tensor it was given, so the in-place squeeze also drops the batch axis of
    ``self.lq`` and the network gets a 4-D clip. Keep separate tensor objects (a view: no copy)."""
    from basicsr.models.video_recurrent_model import VideoRecurrentModel

    def feed_data(self, data):
        self.lq = data['lq'].to(self.device)
        if self.lq is data['lq']:
            self.lq = self.lq.view(self.lq.shape)
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
            if self.gt is data['gt']:
                self.gt = self.gt.view(self.gt.shape)

    VideoRecurrentModel.feed_data = feed_data


def apply():
    """Apply every patch once. The first must run before anything imports ``basicsr``."""
    global _applied
    if _applied:
        return
    functional_tensor_shim()
    for name in PATCHES[1:]:
        globals()[name]()
    _applied = True
