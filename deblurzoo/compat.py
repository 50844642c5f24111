"""Fixes for BasicSR 1.4.2 (the PyPI release) on current torch/torchvision and on machines without GPUs.

Everything here is applied once, by ``import deblurzoo``, before BasicSR is first imported. Each patch replaces one
BasicSR function or method at runtime (never a file in site-packages) and names the upstream problem it answers.
``PATCHES`` lists them; ``tests/test_compat.py`` proves each one.
"""
import atexit
import collections
import contextlib
import copy
import datetime
import difflib
import errno
import functools
import importlib
import inspect
import math
import os
import random
import sys
import time
import types
from unittest import mock

import numpy as np
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
            raise KeyError(f"Unknown type '{name}' in the '{self._name}' registry{did_you_mean(name, self._obj_map)} "
                           f'(check `type:` in your option file; did you `import deblurzoo`?). Registered: {known}')
        return ret

    Registry.get = get


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


def load_training_state(path, device):
    """Load a training state safely (``weights_only``) onto ``device``; a clear error names a bad file."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file's name
        raise RuntimeError(f'Cannot load the training state {path}: {err}') from err


RESUMED = {}  # the training state the running train_pipeline resumed from ('state'), for resume_mid_epoch


def _missing_networks(opt):
    """The network files ``check_resume`` pointed ``path.pretrain_network_*`` to that do not exist."""
    return [path for key, path in opt['path'].items()
            if key.startswith('pretrain_network_') and path and not os.path.isfile(path)]


@_patch
def resume_state():
    """``basicsr.train.load_resume_state`` maps the state with ``storage.cuda(...)`` (fails without CUDA) and
    ``--auto_resume`` looks for states in ``experiments/<name>`` relative to the *working directory* rather than
    the experiment root BasicSR itself writes to. Load onto the model's device and look under
    ``opt['path']['training_states']``. States load with ``weights_only=True``; BasicSR's MultiStepRestartLR keeps
    its milestones in a ``collections.Counter``, allowed here as a safe global. With ``--auto_resume``, a newest state
    that cannot be read, or whose network file is missing, is reported and the next older one is used."""
    import basicsr.train
    from basicsr.utils import check_resume

    torch.serialization.add_safe_globals([collections.Counter])

    def load_resume_state(opt):
        RESUMED.clear()
        use_cuda = opt.get('num_gpu', 0) != 0 and not _cpu_only()
        device = torch.device('cuda', torch.cuda.current_device()) if use_cuda else torch.device('cpu')
        if opt['auto_resume']:
            candidates = saved_states(opt)
        else:
            candidates = [opt['path']['resume_state']] if opt['path'].get('resume_state') else []
            if candidates and not os.path.isfile(candidates[0]):
                raise FileNotFoundError(f"path.resume_state: no training state at '{candidates[0]}'")
        state, problems = None, []
        for path in candidates:
            try:
                state = load_training_state(path, device)
            except RuntimeError as err:
                if not opt['auto_resume']:
                    raise
                problems.append(str(err))
                continue
            opt['path']['resume_state'] = path
            check_resume(opt, state['iter'])
            missing = _missing_networks(opt)
            if not missing:
                break
            if not opt['auto_resume']:
                raise FileNotFoundError(f"path.resume_state {path}: its network file(s) {', '.join(missing)} are "
                                        'missing')
            problems.append(f"{path}: its network file(s) {', '.join(missing)} are missing")
            state = None
        for problem in problems:  # BasicSR's logger is not set up yet: print, as BasicSR does here
            print(f'WARNING: --auto_resume skipped a training state: {problem}', flush=True)
        if state is None:
            if problems:
                raise RuntimeError('--auto_resume: no usable training state in '
                                   f"{opt['path']['training_states']} ({'; '.join(problems)})")
            return None
        RESUMED['state'] = state
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


def did_you_mean(name, choices):
    """' (did you mean 'x'?)' for the closest of ``choices`` to ``name`` (case-insensitive), or ''."""
    lower = {str(c).lower(): c for c in choices}
    close = difflib.get_close_matches(str(name).lower(), list(lower), n=1, cutoff=0.6)
    return f' (did you mean {lower[close[0]]!r}?)' if close else ''


def _accepted_keys(cls):
    """(accepted keyword names, required names) of ``cls``'s constructor; None when it takes ``**kwargs``."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = {name: p.default for name, p in params.items() if p.kind in kinds}
    return accepted, [name for name, default in accepted.items() if default is inspect.Parameter.empty]


def check_constructor_keys(cls, kwargs, what):
    """Raise a TypeError naming every unknown key of ``kwargs`` (with the closest accepted one) and every missing
    required key of ``cls``'s constructor, and listing the accepted keys with their defaults; ``what`` names the
    YAML entry ("network type 'SVDN'")."""
    keys = _accepted_keys(cls)
    if keys is None:
        return
    accepted, required = keys
    unknown = [k for k in kwargs if k not in accepted]
    missing = [k for k in required if k not in kwargs]
    if not unknown and not missing:
        return
    problems = []
    if unknown:
        problems.append(f"unknown key(s) {', '.join(repr(key) + did_you_mean(key, accepted) for key in unknown)}")
    if missing:
        problems.append(f"missing required key(s) {', '.join(map(repr, missing))}")
    listing = ', '.join(name if default is inspect.Parameter.empty else f'{name}={default!r}'
                        for name, default in accepted.items())
    raise TypeError(f"{what}: {'; '.join(problems)}. Accepted keys: {listing}")


@_patch
def constructor_keys():
    """``build_network`` and ``build_loss`` call ``cls(**opt)``: a typo in a YAML key fails with Python's bare
    "__init__() got an unexpected keyword argument" (no accepted keys, no hint) and a missing key with "missing 1
    required positional argument". Check the keys first and list what the class accepts. Every BasicSR module that
    imported the two functions gets the checked versions."""
    import basicsr.archs
    import basicsr.losses
    from basicsr.utils import get_root_logger
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY

    def checked(registry, kind, label):
        """BasicSR's ``build_<kind>`` with the keys checked first."""

        def build(opt):
            opt = copy.deepcopy(opt)
            name = opt.pop('type')
            cls = registry.get(name)
            check_constructor_keys(cls, opt, f"{kind} type '{name}'")
            obj = cls(**opt)
            get_root_logger().info(f'{label} [{obj.__class__.__name__}] is created.')
            return obj

        return build

    build_network, build_loss = checked(ARCH_REGISTRY, 'network', 'Network'), checked(LOSS_REGISTRY, 'loss', 'Loss')
    for name, replacement in (('build_network', build_network), ('build_loss', build_loss)):
        original = getattr(basicsr.archs if name == 'build_network' else basicsr.losses, name)
        for module in list(sys.modules.values()):
            if module is not None and module.__name__.startswith('basicsr') and \
                    getattr(module, name, None) is original:
                setattr(module, name, replacement)


@_patch
def safe_load_network():
    """``BaseModel.load_network`` (``path.pretrain_network_*``, and every resume) unpickles the file with whatever
    ``torch.load`` defaults to, fails with a bare KeyError when the checkpoint lacks ``param_key``, and on a wrong
    checkpoint prints key lists to the log before torch's size-mismatch error. Load with ``weights_only=True``
    (a checkpoint carrying pickled code is refused, and its code never runs), and name the file, the key and the
    missing, unexpected and mis-shaped parameters (``deblurzoo.infer.load_state_dict``/``check_state_dict``). As
    BasicSR: ``params_ema`` falls back to ``params``, a ``module.`` prefix is dropped, and ``strict: false`` loads the
    parameters that fit and logs the others."""
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger

    def load_network(self, net, load_path, strict=True, param_key='params'):
        from deblurzoo.inference.checkpoint import InferenceError, check_state_dict, load_state_dict
        logger = get_root_logger()
        net = self.get_bare_model(net)
        try:
            wanted = param_key if param_key in (None, 'params') else [param_key, 'params']
            state, key = load_state_dict(load_path, wanted)
            if param_key is not None and key != param_key:
                logger.info(f'Loading: {param_key} does not exist, use params.')
            problems = check_state_dict(net, state, load_path, key, strict=strict)
        except InferenceError as err:
            raise RuntimeError(f'cannot load {type(net).__name__} weights: {err}') from None
        if problems:
            logger.warning(f'Loading {load_path} with strict=False: {problems}; those parameters keep their values')
            own = net.state_dict()
            state = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
        logger.info(f'Loading {type(net).__name__} model from {load_path}, with param key: [{key}].')
        net.load_state_dict(state, strict=strict)

    BaseModel.load_network = load_network


def _os_error(err):
    """The first OSError with an errno in ``err``'s chain of causes, or None."""
    while err is not None:
        if isinstance(err, OSError) and err.errno is not None:
            return err
        err = err.__cause__ or err.__context__
    return None


def atomic_save(obj, path, retries=3):
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``: write ``<path>.tmp`` in the same folder,
    flush it to disk, then rename it over ``path``. On failure the temporary file is removed and an OSError names
    ``path``; whatever was at ``path`` before is untouched. ``retries`` tries in all (BasicSR retries for network file
    systems)."""
    tmp = f'{path}.tmp'
    for attempt in range(1, retries + 1):
        try:
            with open(tmp, 'wb') as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return
        except BaseException as err:  # noqa: BLE001 - also KeyboardInterrupt: never leave the partial file behind
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if not isinstance(err, Exception):
                raise
            if attempt == retries:
                cause = _os_error(err)  # torch's writer reports a failed write as "unexpected pos ..."
                reason = cause.strerror if cause is not None else str(err)
                raise OSError(cause.errno if cause is not None else errno.EIO,
                              f'cannot save {path} ({reason}); nothing was overwritten and the previous checkpoints '
                              'are intact: free space or fix the folder, then restart with --auto_resume') from err
            time.sleep(1)


def rng_state():
    """This process's random-number generator states (Python, NumPy, torch CPU and CUDA), as plain containers and
    tensors that ``torch.load(weights_only=True)`` reads back."""
    name, keys, *rest = np.random.get_state()
    state = {'python': random.getstate(), 'numpy': (name, torch.from_numpy(keys.astype(np.int64)), *rest),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what :func:`rng_state` returned."""
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state['python']))
    name, keys, *rest = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@_patch
def atomic_checkpoints():
    """``save_network``/``save_training_state`` ``torch.save`` straight to the final name, and after three failures
    only log a warning ("Just ignore it") and train on: a kill or a full disk mid-write leaves a truncated newest
    checkpoint, which ``--auto_resume`` then picks, or no checkpoint at all without anyone noticing. Write atomically
    (:func:`atomic_save`) and raise when a checkpoint cannot be written (the network file is written before the
    training state, so a state always has its network). Training states also keep every rank's random-number
    generator states (``rng``), so a resumed run continues the random crops, flips and sampling of the interrupted
    one (``resume_mid_epoch``)."""
    from torch import distributed as dist
    from basicsr.models.base_model import BaseModel
    from basicsr.utils.dist_util import get_dist_info, master_only

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        label = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
        save_dict = {}
        for net_, key in zip(nets, keys):
            state_dict = self.get_bare_model(net_).state_dict()
            save_dict[key] = {k[len('module.'):] if k.startswith('module.') else k: v.cpu()
                              for k, v in state_dict.items()}
        atomic_save(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        rank, world_size = get_dist_info()
        rngs = [rng_state()]
        if world_size > 1:  # every rank calls this (SRModel.save): gather each rank's generators on rank 0
            rngs = [None] * world_size
            dist.all_gather_object(rngs, rng_state())
        if rank != 0:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], 'rng': rngs}
        atomic_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    BaseModel.save_network = save_network
    BaseModel.save_training_state = save_training_state


@_patch
def resume_mid_epoch():
    """BasicSR's training loop starts a resumed run at the beginning of the saved epoch, so it trains again on the
    batches it already saw in that epoch, with fresh random crops (Python/NumPy/torch generators are not saved).
    It also counts ``ceil(len(dataset) / batch)`` iterations per epoch while its loader drops the last incomplete
    batch, so it can stop before ``total_iter``, and a training set smaller than one batch trains on nothing and
    exits silently. Here the epochs count the loader's real batches, an empty loader is an error naming the
    dataset, and a resumed run skips the batches of the saved epoch it already trained on and restores the
    generators of the state's rank just before drawing its first batch. With ``num_worker_per_gpu: 0`` the resumed
    run then repeats the uninterrupted run's steps exactly; with workers, the same images in the same order, but
    the workers' random crops differ (BasicSR seeds workers afresh every epoch)."""
    import basicsr.train
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.utils import get_root_logger
    from basicsr.utils.dist_util import get_dist_info

    original_create = basicsr.train.create_train_val_dataloader
    original_iter = EnlargedSampler.__iter__

    def sampler_iter(self):
        resume, self.resume = getattr(self, 'resume', None), None
        indices = list(original_iter(self))
        if resume is None:
            return iter(indices)
        if resume['rng'] is not None:
            set_rng_state(resume['rng'])
        return iter(indices[resume['skip']:])

    def create_train_val_dataloader(opt, logger):
        train_loader, train_sampler, val_loaders, total_epochs, total_iters = original_create(opt, logger)
        batches = len(train_loader)  # BasicSR's loader drops the last incomplete batch
        if batches == 0:
            train_opt = opt['datasets']['train']
            raise ValueError(
                f"datasets.train '{train_opt.get('name', '')}': {len(train_loader.dataset)} samples (x "
                f"dataset_enlarge_ratio {train_opt.get('dataset_enlarge_ratio', 1)}, over {opt['world_size']} "
                f"process(es)) make no full batch of batch_size_per_gpu {train_opt['batch_size_per_gpu']}; lower "
                'batch_size_per_gpu or raise dataset_enlarge_ratio')
        total_epochs = math.ceil(total_iters / batches)
        logger.info(f'Training batches per epoch: {batches}; epochs: {total_epochs}.')
        state = RESUMED.get('state')
        if state is not None:
            rank, world_size = get_dist_info()
            done = state['iter'] - state['epoch'] * batches  # batches of the saved epoch already trained on
            rngs = state.get('rng') or []
            rng = rngs[rank] if len(rngs) == world_size else None
            if not 0 <= done <= batches:
                get_root_logger().warning(
                    f"Resuming: iteration {state['iter']} does not fall in epoch {state['epoch']} of {batches} batches "
                    '(the training set, batch size or process count changed?); the epoch restarts from its start')
                done = 0
            if rng is None:
                get_root_logger().warning(f'Resuming: the training state has no random-generator state for '
                                          f'{world_size} process(es); random crops will differ from an '
                                          'uninterrupted run')
            logger.info(f"Resuming inside epoch {state['epoch']}: skipping its first {done} batch(es)")
            train_sampler.resume = {'skip': done * opt['datasets']['train']['batch_size_per_gpu'], 'rng': rng}
        return train_loader, train_sampler, val_loaders, total_epochs, total_iters

    EnlargedSampler.__iter__ = sampler_iter
    basicsr.train.create_train_val_dataloader = create_train_val_dataloader


def _probe_writable(folder, what):
    """Create ``folder`` if needed and write a file in it; an OSError names the folder and the option to change."""
    probe = os.path.join(folder, f'.deblurzoo_write_test_{os.getpid()}')
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, 'w') as f:
            f.write('ok')
        os.remove(probe)
    except OSError as err:
        raise OSError(err.errno, f'{what} {folder} is not writable ({err.strerror}); fix its permissions or choose '
                      'another folder (path.experiments_root in the option file)') from None


SAVED_FOLDERS = ('models', 'training_states', 'log')  # what BasicSR's parse_options puts in an experiment folder


@_patch
def experiment_dirs():
    """An experiment folder that cannot be created or written fails in ``make_exp_dirs`` with a bare OSError, or,
    when resuming, only at the first checkpoint, after ``save_checkpoint_freq`` iterations of training (BasicSR
    then logs a warning and trains on without checkpoints). Check that the experiment's folders can be written
    before anything is trained (rank 0), with an error naming the folder."""
    import basicsr.train
    from basicsr.utils.dist_util import master_only

    original_make = basicsr.train.make_exp_dirs
    original_copy = basicsr.train.copy_opt_file

    def make_exp_dirs(opt):
        root = opt['path']['experiments_root' if opt['is_train'] else 'results_root']
        try:
            original_make(opt)
        except OSError as err:
            raise OSError(err.errno, f'cannot create the experiment folder {root} ({err.strerror}); fix its '
                          'permissions or choose another folder (path.experiments_root in the option file)') from None

    @master_only
    def copy_opt_file(opt_file, experiments_root):
        for folder in [experiments_root] + [os.path.join(experiments_root, sub) for sub in SAVED_FOLDERS]:
            _probe_writable(folder, 'the experiment folder')
        original_copy(opt_file, experiments_root)

    basicsr.train.make_exp_dirs = make_exp_dirs
    basicsr.train.copy_opt_file = copy_opt_file


def apply():
    """Apply every patch once. The first must run before anything imports ``basicsr``."""
    global _applied
    if _applied:
        return
    functional_tensor_shim()
    for name in PATCHES[1:]:
        globals()[name]()
    _applied = True
