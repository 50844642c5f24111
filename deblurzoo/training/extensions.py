"""deblurzoo's trainer extensions: what ``deblurzoo/train.py`` and ``deblurzoo/test.py`` add to BasicSR's pipelines.

``import deblurzoo`` only registers deblurzoo's parts and fixes what BasicSR 1.4.2 needs to run at all
(``deblurzoo.compat``). The extensions below change BasicSR's behaviour, so they are enabled explicitly, for the
duration of one pipeline::

    from basicsr.train import train_pipeline
    import deblurzoo

    with deblurzoo.trainer_extensions():
        train_pipeline(root_path)

Inside the ``with`` block, ``basicsr.train``/``basicsr.test`` use deblurzoo's versions of a few of their module-level
names (restored on exit; BasicSR's classes and registries are never changed):

- ``parse_options``: before anything is built, read or written, the option file is read strictly (UTF-8, no duplicate
  keys) and every value's type and range is checked, YAML 1.1 number strings becoming numbers, names kept to one
  folder component (:mod:`deblurzoo.option_values`); a test option file must name every network's weights unless
  ``allow_untrained: true``; every ``type:`` and every network/loss constructor key is checked, with the closest
  valid name suggested (:func:`deblurzoo.option_keys.check_options`).
- ``build_model``: builds the model class with :class:`~deblurzoo.training.checkpoints.CheckpointingMixin` in front
  (atomic checkpoints that fail loudly, generator states and the model's extra state in training states,
  ``weights_only`` network loading with the problems named).
- ``load_resume_state``: with ``--auto_resume``, a newest state that cannot be read, or whose network file is missing,
  is reported and the next older one is used; the state resumed from is kept (on this object) for the data loader.
- ``create_train_val_dataloader`` and ``EnlargedSampler``: exact mid-epoch resume (:class:`ResumableSampler`), epochs
  counted in the loader's real batches, a training set smaller than one batch is an error.
- ``make_exp_dirs``/``copy_opt_file``: the experiment folders are checked for writing before anything trains; the
  option file's copy is written atomically.
"""
import argparse
import contextlib
import copy
import math
import os
import sys
import time
from unittest import mock

from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import check_resume, get_root_logger
from basicsr.utils.dist_util import get_dist_info, master_only
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
from .. import compat
from ..data import safe_io
from ..option_keys import check_entry, check_options, registered
from ..option_values import check_option_values, check_weights, load_option_file
from .checkpoints import extended_model_class, set_rng_state

SAVED_FOLDERS = ('models', 'training_states', 'log')  # what BasicSR's parse_options puts in an experiment folder


# ---------------------------------------------------------------------------------------------------------------------
# builders with checked options
# ---------------------------------------------------------------------------------------------------------------------


def build_network(opt):
    """BasicSR's ``build_network`` with the ``type`` and the constructor keys checked first."""
    from basicsr.archs import build_network as basicsr_build_network
    check_entry(ARCH_REGISTRY, opt, 'network', 'network')
    return basicsr_build_network(opt)


def build_loss(opt):
    """BasicSR's ``build_loss`` with the ``type`` and the constructor keys checked first."""
    from basicsr.losses import build_loss as basicsr_build_loss
    check_entry(LOSS_REGISTRY, opt, 'loss', 'loss')
    return basicsr_build_loss(opt)


def build_model(opt):
    """BasicSR's ``build_model`` for a model with deblurzoo's checkpointing: the option dict is checked first
    (:func:`~deblurzoo.option_keys.check_options`) and the model class registered as ``model_type`` is built with
    :class:`~deblurzoo.training.checkpoints.CheckpointingMixin` in front."""
    check_options(opt)
    opt = copy.deepcopy(opt)
    model = extended_model_class(registered(MODEL_REGISTRY, opt['model_type'], 'model_type'))(opt)
    get_root_logger().info(f'Model [{model.__class__.__name__}] is created.')
    return model


# ---------------------------------------------------------------------------------------------------------------------
# exact mid-epoch resume
# ---------------------------------------------------------------------------------------------------------------------


class ResumableSampler(EnlargedSampler):
    """BasicSR's ``EnlargedSampler`` whose next epoch can start part-way, with given generator states.

    BasicSR's training loop starts a resumed run at the beginning of the saved epoch, so it trains again on the batches
    it already saw in that epoch, with fresh random crops (Python/NumPy/torch generators are not saved). After
    :meth:`resume_from`, the next epoch skips the samples already trained on and restores the generators just before
    its first batch is drawn.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resume = None

    def resume_from(self, skip, rng=None):
        """Make the next epoch skip its first ``skip`` samples and restore ``rng`` (:func:`rng_state`) first."""
        self._resume = (skip, rng)

    def __iter__(self):
        indices = list(super().__iter__())
        if self._resume is None:
            return iter(indices)
        (skip, rng), self._resume = self._resume, None
        if rng is not None:
            set_rng_state(rng)
        return iter(indices[skip:])


def load_training_state(path, device):
    """Load a training state safely (``weights_only``) onto ``device``; a clear error names a bad file."""
    import torch
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file's name
        raise RuntimeError(f'Cannot load the training state {path}: {err}') from err


def _missing_networks(opt):
    """The network files ``check_resume`` pointed ``path.pretrain_network_*`` to that do not exist."""
    return [path for key, path in opt['path'].items()
            if key.startswith('pretrain_network_') and path and not os.path.isfile(path)]


# ---------------------------------------------------------------------------------------------------------------------
# experiment folders
# ---------------------------------------------------------------------------------------------------------------------

_CHOOSE = ('fix its permissions or run from another project folder (BasicSR writes under the root of the train.py it '
           'runs)')


def _probe_writable(folder, what):
    """Create ``folder`` if needed and write a file in it; an OSError names the folder."""
    probe = os.path.join(folder, f'.deblurzoo_write_test_{os.getpid()}')
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, 'w') as f:
            f.write('ok')
        os.remove(probe)
    except OSError as err:
        raise OSError(err.errno, f'{what} {folder} is not writable ({err.strerror}); {_CHOOSE}') from None


# ---------------------------------------------------------------------------------------------------------------------
# the extensions, enabled for one pipeline
# ---------------------------------------------------------------------------------------------------------------------


def _option_file_argument(argv=None):
    """The ``-opt`` file named on BasicSR's command line, or None."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args.opt


@master_only
def _checked_copy_opt_file(opt_file, experiments_root):
    """BasicSR's ``copy_opt_file`` (the option file with a header naming the time and command), replaced, not wrapped:
    every folder a run writes to is checked first (when resuming, an unwritable experiment folder would fail only at
    the first checkpoint, after ``save_checkpoint_freq`` iterations), and the copy is written atomically (BasicSR
    copies it in place, so a full disk would leave a truncated copy, or cut the previous run's copy on a resume)."""
    for folder in [experiments_root] + [os.path.join(experiments_root, sub) for sub in SAVED_FOLDERS]:
        _probe_writable(folder, 'the experiment folder')
    header = f'# GENERATE TIME: {time.asctime()}\n# CMD:\n# {" ".join(sys.argv)}\n\n'
    safe_io.write_bytes_atomic(os.path.join(experiments_root, os.path.basename(opt_file)),
                               header.encode('utf-8', 'surrogateescape') + safe_io.read_bytes(opt_file))


class TrainerExtensions:
    """The context manager :func:`trainer_extensions` returns; holds the state of the one run it wraps."""

    def __init__(self):
        self.resumed = None  # the training state the run resumed from
        self._stack = None

    def __enter__(self):
        import basicsr.test
        import basicsr.train
        if self._stack is not None:
            raise RuntimeError('trainer_extensions() is already active')
        replacements = {
            basicsr.train: {
                'parse_options': self._checked_parse(basicsr.train.parse_options),
                'load_resume_state': self.load_resume_state,
                'make_exp_dirs': self._checked_make_exp_dirs(basicsr.train.make_exp_dirs),
                'copy_opt_file': _checked_copy_opt_file,
                'create_train_val_dataloader': self._counted_dataloaders(basicsr.train.create_train_val_dataloader),
                'EnlargedSampler': ResumableSampler,
                'build_model': build_model,
            },
            basicsr.test: {
                'parse_options': self._checked_parse(basicsr.test.parse_options),
                'make_exp_dirs': self._checked_make_exp_dirs(basicsr.test.make_exp_dirs),
                'build_model': build_model,
            },
        }
        self._stack = contextlib.ExitStack()
        for module, names in replacements.items():
            for name, value in names.items():
                self._stack.enter_context(mock.patch.object(module, name, value))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self._stack = None
        return False

    @staticmethod
    def _checked_parse(original):

        def parse_options(root_path, is_train=True):
            path = _option_file_argument()
            if path is not None:  # before BasicSR reads it: duplicate keys, encoding, values it uses itself
                check_option_values(load_option_file(path))
            opt, args = original(root_path, is_train)
            check_option_values(opt)  # again with --force_yml applied; YAML 1.1 number strings become numbers
            if not is_train:
                check_weights(opt)
            check_options(opt)
            return opt, args

        return parse_options

    def load_resume_state(self, opt):
        """``basicsr.train.load_resume_state`` (with ``deblurzoo.compat``'s device and folder fixes) that, with
        ``--auto_resume``, skips past a newest state that cannot be read or whose network file is missing, and names
        a ``path.resume_state`` that does not exist."""
        candidates = compat.resume_candidates(opt)
        if not opt['auto_resume'] and candidates and not os.path.isfile(candidates[0]):
            raise FileNotFoundError(f"path.resume_state: no training state at '{candidates[0]}'")
        state, problems = None, []
        for path in candidates:
            try:
                state = load_training_state(path, compat.resume_device(opt))
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
        if state is None and problems:
            raise RuntimeError('--auto_resume: no usable training state in '
                               f"{opt['path']['training_states']} ({'; '.join(problems)})")
        self.resumed = state
        return state

    def _counted_dataloaders(self, original):
        """BasicSR counts ``ceil(len(dataset) / batch)`` iterations per epoch while its loader drops the last
        incomplete batch, so it can stop before ``total_iter``, and a training set smaller than one batch trains on
        nothing and exits silently. Count the loader's real batches, refuse an empty loader naming the dataset, and
        on resume make the sampler skip the batches of the saved epoch already trained on. With
        ``num_worker_per_gpu: 0`` a resumed run then repeats the uninterrupted run's steps exactly; with workers, the
        same images in the same order, but the workers' random crops differ (BasicSR seeds workers every epoch)."""

        def create_train_val_dataloader(opt, logger):
            train_loader, train_sampler, val_loaders, total_epochs, total_iters = original(opt, logger)
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
            if self.resumed is not None:
                self._skip_trained_batches(opt, train_sampler, batches, logger)
            return train_loader, train_sampler, val_loaders, total_epochs, total_iters

        return create_train_val_dataloader

    def _skip_trained_batches(self, opt, sampler, batches, logger):
        state = self.resumed
        rank, world_size = get_dist_info()
        done = state['iter'] - state['epoch'] * batches  # batches of the saved epoch already trained on
        rngs = state.get('rng') or []
        rng = rngs[rank] if len(rngs) == world_size else None
        if not 0 <= done <= batches:
            logger.warning(f"Resuming: iteration {state['iter']} does not fall in epoch {state['epoch']} of {batches} "
                           'batches (the training set, batch size or process count changed?); the epoch restarts from '
                           'its start')
            done = 0
        if rng is None:
            logger.warning(f'Resuming: the training state has no random-generator state for {world_size} '
                           'process(es); random crops will differ from an uninterrupted run')
        logger.info(f"Resuming inside epoch {state['epoch']}: skipping its first {done} batch(es)")
        sampler.resume_from(done * opt['datasets']['train']['batch_size_per_gpu'], rng)

    @staticmethod
    def _checked_make_exp_dirs(original):
        """An experiment folder that cannot be created fails in ``make_exp_dirs`` with a bare OSError: name it."""

        def make_exp_dirs(opt):
            root = opt['path']['experiments_root' if opt['is_train'] else 'results_root']
            try:
                original(opt)
            except OSError as err:
                raise OSError(err.errno, f'cannot create the experiment folder {root} ({err.strerror}); '
                              f'{_CHOOSE}') from None

        return make_exp_dirs


def trainer_extensions():
    """Enable deblurzoo's trainer extensions for the BasicSR pipeline run inside ``with``: see this module's
    docstring. Not re-entrant; each ``with`` gets a fresh object."""
    return TrainerExtensions()
