"""What deblurzoo's trainer extension changes in a model's checkpoints: atomic writes that fail loudly, training states
that carry every rank's random-number generators (and any extra state the model declares), and network loading that
refuses pickled code and names what does not fit.

:func:`extended_model_class` derives, from any BasicSR model class, a subclass with :class:`CheckpointingMixin` in
front; ``deblurzoo.training.build_model`` builds that subclass. BasicSR's ``BaseModel`` itself is never changed.

Extra training state: a model may define ``extra_training_state()`` (returning a dict of tensors and plain containers,
as ``torch.load(weights_only=True)`` reads them) and ``load_extra_training_state(state)``. The dict is saved under the
training state's ``extra`` key and handed back on resume (``{}`` for a state saved without one), after BasicSR has
restored the optimizers and schedulers.
"""
import functools
import os
import random

import numpy as np
import torch
from torch import distributed as dist

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info, master_only
from ..checkpoint import atomic_save
from ..inference.checkpoint import InferenceError, check_state_dict, load_state_dict


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


class CheckpointingMixin:
    """Replaces four ``BaseModel`` methods of the class it is mixed into (see :func:`extended_model_class`).

    - ``save_network``/``save_training_state``: BasicSR ``torch.save``-s straight to the final name and, after three
      failures, logs "Just ignore it" and trains on: a kill or a full disk mid-write leaves a truncated newest
      checkpoint, which ``--auto_resume`` then picks, or no checkpoint at all without anyone noticing. Here every file
      is written atomically (:func:`~deblurzoo.checkpoint.atomic_save`) and a checkpoint that cannot be written stops
      training (the network file is written before the training state, so a state always has its network).
      Training states keep every rank's generator states (``rng``, gathered on rank 0) and the model's extra state.
    - ``resume_training``: also hands the extra state back (``load_extra_training_state``).
    - ``load_network`` (``path.pretrain_network_*`` and every resume): loads with ``weights_only=True`` and names the
      file, the key and the missing, unexpected and mis-shaped parameters. As BasicSR: ``params_ema`` falls back to
      ``params``, a ``module.`` prefix is dropped, and ``strict: false`` loads the parameters that fit and logs the
      others.
    """

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
        if callable(getattr(self, 'extra_training_state', None)):
            state['extra'] = self.extra_training_state()
        atomic_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if callable(getattr(self, 'load_extra_training_state', None)):
            self.load_extra_training_state(resume_state.get('extra', {}))

    def load_network(self, net, load_path, strict=True, param_key='params'):
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


@functools.cache
def extended_model_class(cls):
    """``cls`` (a BasicSR model class) with :class:`CheckpointingMixin` in front, under ``cls``'s name (BasicSR logs
    ``Model [<name>] is created.``)."""
    if issubclass(cls, CheckpointingMixin):
        return cls
    return type(cls.__name__, (CheckpointingMixin, cls), {'__doc__': cls.__doc__, '__module__': __name__,
                                                          '__qualname__': f'extended_model_class({cls.__qualname__})'})
