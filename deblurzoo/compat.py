"""Fixes for BasicSR 1.4.2 (the PyPI release) on current torch/torchvision and on machines without GPUs.

Only what BasicSR needs to work at all lives here; ``import deblurzoo`` (and so BasicSR's own entry points, through
``deblurzoo_autoload``) applies it once. Each fix replaces a BasicSR function or method at runtime (never a file in
site-packages), names the upstream problem it answers and keeps BasicSR's behaviour otherwise. ``PATCHES`` lists them;
``tests/test_compat.py`` proves each one. What changes BasicSR's behaviour (atomic checkpoints, exact mid-epoch resume,
option-key checks, experiment-folder checks) is not here: it is deblurzoo's trainer extension,
:func:`deblurzoo.training.trainer_extensions`, enabled by ``deblurzoo/train.py`` and ``deblurzoo/test.py``.
"""
import atexit
import collections
import datetime
import functools
import os
from unittest import mock

import torch

import deblurzoo_autoload

PATCHES = []
_applied = False


def _patch(func):
    PATCHES.append(func.__name__)
    return func


@_patch
def functional_tensor_shim():
    """BasicSR #649: ``basicsr/data/degradations.py`` imports ``torchvision.transforms.functional_tensor``, removed in
    torchvision 0.17, so ``import basicsr`` fails. Provide the one function it uses under the old module name
    (:func:`deblurzoo_autoload.add_functional_tensor_shim`, which the autoload hook also runs before BasicSR loads)."""
    deblurzoo_autoload.add_functional_tensor_shim()


def _cpu_only():
    return not torch.cuda.is_available() or torch.cuda.device_count() == 0


@_patch
def distributed_init():
    """BasicSR's ``init_dist`` hard-codes NCCL and calls ``torch.cuda.set_device(rank % device_count())``, which divides
    by zero on machines without GPUs. Use gloo there and set a device only when one exists. Under torchrun with
    ``--max-restarts``, each restart attempt gets its own key prefix in the launcher's store (see the code). The process
    group is destroyed at exit (``close_distributed``)."""
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
            restart = os.environ.get('TORCHELASTIC_RESTART_COUNT')
            if restart is not None and os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True':
                # torchrun (static rendezvous, --master_port) serves one store for every restart attempt, and torch
                # adds no per-attempt prefix: restarted workers would read the dead attempt's addresses. Keep each
                # attempt's keys apart.
                store = dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']), is_master=False,
                                      timeout=datetime.timedelta(minutes=30))
                kwargs = dict(kwargs, store=dist.PrefixStore(f'deblurzoo/attempt_{restart}', store),
                              rank=int(os.environ['RANK']), world_size=int(os.environ['WORLD_SIZE']))
            dist.init_process_group(backend=backend, **kwargs)
        elif launcher == 'slurm':
            if _cpu_only():  # its slurm path derives LOCAL_RANK from the GPU count and sets a CUDA device
                with mock.patch('torch.cuda.device_count', return_value=1), mock.patch('torch.cuda.set_device'):
                    dist_util._init_dist_slurm(backend, **kwargs)
            else:
                dist_util._init_dist_slurm(backend, **kwargs)
        else:
            raise ValueError(f'Invalid launcher type: {launcher}')
        atexit.register(close_distributed, barrier=False)

    dist_util.init_dist = init_dist
    options.init_dist = init_dist  # parse_options imported the name


def close_distributed(barrier=True):
    """Destroy the default process group, if any, after a barrier when ``barrier`` (a finished run). BasicSR never
    destroys it: left to interpreter shutdown, a gloo process group occasionally aborts the process ("terminate called
    without an active exception", SIGABRT) after training has finished, and torchrun reports the run as failed.
    ``init_dist`` registers this without the barrier at exit, for runs that end in an error or that use BasicSR's own
    scripts; ``deblurzoo/train.py`` and ``deblurzoo/test.py`` call it with the barrier when their pipeline returns."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


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


def saved_states(opt):
    """Paths of the ``<iter>.state`` files under the experiment's ``training_states`` folder, newest first."""
    state_dir = opt['path'].get('training_states')
    if not state_dir or not os.path.isdir(state_dir):
        return []
    iters = [int(f[:-len('.state')]) for f in os.listdir(state_dir) if f.endswith('.state') and f[:-6].isdigit()]
    return [os.path.join(state_dir, f'{i}.state') for i in sorted(iters, reverse=True)]


def find_resume_state(opt):
    """The newest ``<iter>.state`` under the experiment's ``training_states`` folder, or None."""
    states = saved_states(opt)
    return states[0] if states else None


def resume_device(opt):
    """The device a training state is loaded onto: the current CUDA device when the run uses GPUs, else the CPU."""
    if opt.get('num_gpu', 0) != 0 and not _cpu_only():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def resume_candidates(opt):
    """The training states a run may resume from, in order of preference: with ``--auto_resume`` every saved state,
    newest first (:func:`saved_states`); otherwise ``path.resume_state`` alone, if set."""
    if opt['auto_resume']:
        return saved_states(opt)
    return [opt['path']['resume_state']] if opt['path'].get('resume_state') else []


@_patch
def resume_state():
    """``basicsr.train.load_resume_state`` maps the state with ``storage.cuda(...)`` (fails without CUDA), loads it with
    ``torch.load``'s default, which is ``weights_only=True`` since torch 2.6 and refuses the ``collections.Counter`` in
    which BasicSR's MultiStepRestartLR keeps its milestones, and with ``--auto_resume`` looks for states in
    ``experiments/<name>`` relative to the *working directory* rather than the experiment root BasicSR itself writes
    to. Load onto the model's device, allow ``Counter`` as a safe global and look under
    ``opt['path']['training_states']``; otherwise as BasicSR (the newest state, then ``check_resume``)."""
    import basicsr.train
    from basicsr.utils import check_resume

    torch.serialization.add_safe_globals([collections.Counter])

    def load_resume_state(opt):
        paths = resume_candidates(opt)
        if not paths:
            return None
        opt['path']['resume_state'] = paths[0]
        state = torch.load(paths[0], map_location=resume_device(opt), weights_only=True)
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


def installed_root():
    """The folder holding the ``basicsr`` package when BasicSR is installed from a wheel (the folder also holds its
    ``basicsr-<version>.dist-info``: site-packages, or any ``--target``), else None (a clone, editable or on
    ``PYTHONPATH``)."""
    import basicsr
    root = os.path.dirname(os.path.dirname(os.path.abspath(basicsr.__file__)))
    installed = any(name.startswith('basicsr-') and name.endswith('.dist-info') for name in os.listdir(root))
    return root if installed else None


def relocated(path):
    """``path`` with the installed BasicSR root (see :func:`installed_root`) replaced by the working directory."""
    root = installed_root()
    if root is None or not isinstance(path, str) or os.path.commonpath([root, os.path.abspath(path)]) != root:
        return path
    return os.path.normpath(os.path.join(os.getcwd(), os.path.relpath(os.path.abspath(path), root)))


@_patch
def installed_scripts_root():
    """BasicSR's scripts take their root from their own location (``train.py``'s parent's parent): run from a BasicSR
    clone that is the clone, but run from a pip install (``python -m basicsr.train``) it is site-packages, so
    ``experiments/``, ``results/`` and ``tb_logger/`` would be written into site-packages (or fail where it is
    read-only). Under an installed BasicSR, take the working directory as the root instead, as
    ``python basicsr/train.py`` run from a clone does; print where the run writes. A root anywhere else (a clone,
    a project's own ``train.py``) is left as it is."""
    import basicsr.utils
    from basicsr.utils import options

    def parse_options(root_path, is_train=True):
        root = relocated(root_path)
        if root != root_path:
            print(f'BasicSR is installed in {root_path}: experiments/, results/ and tb_logger/ go under the working '
                  f'directory {root} instead (deblurzoo.compat)', flush=True)
        return original_parse(root, is_train)

    def mkdir_and_rename(path):  # tb_logger/<name>: train_pipeline builds it from its root_path
        return original_mkdir(relocated(path))

    def init_tb_logger(log_dir):
        return original_tb(log_dir=relocated(log_dir))

    original_parse, original_mkdir, original_tb = (options.parse_options, basicsr.utils.mkdir_and_rename,
                                                   basicsr.utils.init_tb_logger)
    options.parse_options = parse_options  # the names basicsr/{train,test}.py import when run as scripts
    basicsr.utils.mkdir_and_rename = mkdir_and_rename
    basicsr.utils.init_tb_logger = init_tb_logger


def apply():
    """Apply every fix once. The first must run before anything imports ``basicsr``."""
    global _applied
    if _applied:
        return
    functional_tensor_shim()
    for name in PATCHES[1:]:
        globals()[name]()
    _applied = True
