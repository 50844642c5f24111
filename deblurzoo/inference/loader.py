"""Building a network for inference: from a registered arch name or a BasicSR option file, with its checkpoints.

:func:`load_model` reads ``network_g`` (and a two-stage model's ``network_stage1``), checks the constructor keys
(unknown ones named, the closest suggested), loads the checkpoints through :mod:`deblurzoo.inference.checkpoint` and
returns a :class:`LoadedModel` in eval mode on its device; :meth:`LoadedModel.restorer` gives its
:class:`~deblurzoo.inference.restorer.Restorer`.
"""
import itertools
import os.path as osp

import torch

from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from deblurzoo.archs.protocol import arch_info
from deblurzoo.data.safe_io import shown
from deblurzoo.option_values import OptionError, load_option_file
from deblurzoo.option_keys import check_constructor_keys, did_you_mean
from .checkpoint import load_weights
from .errors import InferenceError
from .restorer import Restorer
from .test_time import ensemble_size


class LoadedModel:
    """A network ready for inference (eval mode, on its device), with what the CLI needs to know about it.

    Attributes:
        net (nn.Module): The network (``network_g``).
        stage1 (nn.Module | None): A two-stage model's frozen first stage (``network_stage1``), run on every frame.
        arch (str): ``net``'s registered type.
        network_opt (dict): Its constructor options, ``type`` included.
        info (ArchInfo): ``net``'s declared frame mode (``deblurzoo.archs.protocol.arch_info``).
        weights (str | None): The checkpoint loaded into ``net``.
        self_ensemble (int): The option file's ``val.self_ensemble`` as a transform count (1: off).
    """

    def __init__(self, net, network_opt, weights=None, stage1=None, self_ensemble=1):
        self.net, self.stage1, self.network_opt = net, stage1, dict(network_opt)
        self.arch = network_opt['type']
        self.weights, self.self_ensemble = weights, self_ensemble
        self.info = arch_info(net)

    @property
    def kind(self):
        """'image', 'window' or 'sequence': ``net``'s declared frame mode."""
        return self.info.mode

    @property
    def video(self):
        """Whether the model restores frames in context (a video net, or two stages), so a folder is one sequence."""
        return self.info.video or self.stage1 is not None

    @property
    def device(self):
        return next(itertools.chain(self.net.parameters(), self.net.buffers(), [torch.empty(0)])).device

    def restorer(self, self_ensemble=None, **kwargs):
        """The model's :class:`Restorer` (``self_ensemble`` None: the option file's; ``kwargs``: the Restorer's)."""
        weights = f' with the weights in {shown(self.weights)}' if self.weights else ' (no weights loaded)'
        num = self.self_ensemble if self_ensemble is None else self_ensemble
        return Restorer(self.net, self.stage1, num, label=f'{self.arch}{weights}', **kwargs)


def _arch_class(name):
    """The class registered as ``name`` (or BasicSR's ``name_basicsr``, as ``ARCH_REGISTRY.get`` finds it), or None."""
    registry = ARCH_REGISTRY._obj_map
    return registry.get(name) or registry.get(f'{name}_basicsr')


def _build(network_opt, key):
    if not isinstance(network_opt, dict) or 'type' not in network_opt:
        raise InferenceError(f'{key}: a mapping with a type: (an arch name), got {network_opt!r}')
    arch = network_opt['type']
    cls = _arch_class(arch) if isinstance(arch, str) else None
    if cls is None:
        raise InferenceError(f'{key}.type: no arch {arch!r} is registered' + did_you_mean(arch, ARCH_REGISTRY._obj_map)
                             + f'; registered: {", ".join(sorted(ARCH_REGISTRY._obj_map))}')
    kwargs = {k: v for k, v in network_opt.items() if k != 'type'}
    try:
        check_constructor_keys(cls, kwargs, f'{key}: {arch}')
    except TypeError as err:
        raise InferenceError(str(err)) from None
    try:
        return build_network(dict(network_opt))
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:  # a value the constructor cannot take
        raise InferenceError(f'{key}: {arch}({", ".join(f"{k}={v!r}" for k, v in kwargs.items())}) failed: '
                             f'{type(err).__name__}: {err}') from None


def resolve_device(device='auto'):
    """'auto' -> the first GPU if there is one, else the CPU."""
    if device in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise InferenceError(f'--device: {err}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InferenceError(f'--device {device}: CUDA is not available here (use cpu)')
    return device


def load_model(model, weights=None, param_key=None, device='cpu', allow_untrained=False):
    """Build a network from an arch name or an option file and load its checkpoint.

    Args:
        model (str): A registered arch name (default constructor arguments) or a YAML option file.
        weights (str | None): Checkpoint; None: the option file's ``path.pretrain_network_g``. An arch name without
            weights gives the untrained net (for tests and cost measurements).
        param_key (str | None): Checkpoint key; None: the option file's ``path.param_key_g``, else automatic
            (:func:`load_state_dict`).
        device (str | torch.device): Where to put the net ('auto': a GPU if there is one). Default: 'cpu'.
        allow_untrained (bool): Let an option file without ``path.pretrain_network_g`` give its untrained net (as
            its own ``allow_untrained: true`` does); otherwise it is refused. Default: False.

    Returns:
        LoadedModel
    """
    device = resolve_device(device)
    opt = {}
    if model.endswith(('.yml', '.yaml')) or osp.isfile(model):
        if not osp.isfile(model):
            raise InferenceError(f'option file not found: {shown(model)}')
        try:
            opt = load_option_file(model)  # unreadable, non-UTF-8, non-YAML, duplicate keys, not a mapping: named
        except OptionError as err:
            raise InferenceError(str(err)) from None
        if 'network_g' not in opt:
            raise InferenceError(f'option file {shown(model)} has no network_g')
        network_opt = opt['network_g']
        allow_untrained = allow_untrained or opt.get('allow_untrained') is True
    elif model in ARCH_REGISTRY._obj_map:
        network_opt = {'type': model}
    else:
        raise InferenceError(f'--model {model!r} is neither an option file nor a registered arch'
                             + did_you_mean(model, ARCH_REGISTRY._obj_map)
                             + f'; registered: {", ".join(sorted(ARCH_REGISTRY._obj_map))}')
    path_opt = opt.get('path') or {}
    net = _build(network_opt, 'network_g')
    from_file = [f'path.{key}' for key, given in (('pretrain_network_g', weights), ('param_key_g', param_key))
                 if not given and path_opt.get(key)]  # settings the option file gave: errors name them
    weights = weights or path_opt.get('pretrain_network_g')
    if weights:
        try:
            load_weights(net, weights, param_key or path_opt.get('param_key_g'), network_opt['type'])
        except InferenceError as err:
            raise InferenceError(f'{model} ({", ".join(from_file)}): {err}' if from_file else str(err)) from None
    elif opt and not allow_untrained:
        raise InferenceError(f'{shown(model)}: path.pretrain_network_g is empty; pass --weights (or '
                             '--allow-untrained to run the untrained net)')
    stage1 = None
    if opt.get('network_stage1'):
        stage1 = _build(opt['network_stage1'], 'network_stage1')
        stage1_weights = path_opt.get('pretrain_network_stage1')
        if not stage1_weights and not allow_untrained:
            raise InferenceError(f'{model}: network_stage1 needs path.pretrain_network_stage1')
        if stage1_weights:
            load_weights(stage1, stage1_weights, path_opt.get('param_key_stage1'), opt['network_stage1']['type'])
        stage1 = stage1.to(device).eval().requires_grad_(False)
    try:
        num = ensemble_size((opt.get('val') or {}).get('self_ensemble'))
    except ValueError as err:
        raise InferenceError(f'{model}: {err}') from None
    return LoadedModel(net.to(device).eval().requires_grad_(False), network_opt, weights, stage1, num)
