"""Checkpoint loading, the only loader in deblurzoo: the CLI, the scripts and training (BasicSR's ``load_network``,
through ``deblurzoo.compat``) read network weights here.

Checkpoints are BasicSR's (``{'params': ..., 'params_ema': ...}``) or bare state dicts, loaded with
``weights_only=True`` (a file carrying pickled code is refused and its code never runs). Errors name the file, the key
and, for a checkpoint that does not fit the net, its missing, unexpected and mis-shaped keys; NaN weights are refused.
This module depends on torch only (no deblurzoo module), so anything may import it.
"""
import os.path as osp
import pickle
import zipfile

import torch

from .errors import InferenceError

PARAM_KEYS = ('params_ema', 'params', 'state_dict')


def load_state_dict(path, param_key=None):
    """The network weights in a checkpoint file, loaded with ``weights_only=True``.

    Args:
        path (str): A BasicSR checkpoint ({'params': ..., 'params_ema': ...}) or a bare state dict.
        param_key (str | list[str] | None): The key to read (of a list: the first the file has); None: 'params_ema',
            else 'params', else 'state_dict', else the whole file when it is a state dict.

    Returns:
        tuple[dict, str | None]: The state dict (a 'module.' prefix, from DDP, removed) and the key it came from.
    """
    if not osp.isfile(path):
        raise InferenceError(f'checkpoint not found: {path}')
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        raise InferenceError(f'checkpoint {path} is empty (0 bytes)')
    is_zip = head.startswith(b'PK')
    if not is_zip and head[0] != 0x80:  # torch.save writes a zip archive (or, before 1.6, a pickle of protocol 2+)
        raise InferenceError(f'{path} is not a PyTorch checkpoint (torch.save writes a zip archive or a pickle; this '
                             f'file starts with {head!r})')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is a page of advice; keep what the unpickler found
        text = ' '.join(str(err).split())
        found = text.split('WeightsUnpickler error:', 1)[-1].split(' Check the documentation')[0]
        found = found.split('. Please')[0].strip()
        raise InferenceError(f'refusing to load {path}: it holds Python objects other than tensors and plain '
                             f'containers, which could run code when unpickled (deblurzoo loads checkpoints with '
                             f'weights_only=True; found: {found}). Re-save its state dict from a trusted '
                             f'environment.') from None
    except Exception as err:  # noqa: BLE001 - truncated or not a checkpoint: say which file
        if is_zip and not zipfile.is_zipfile(path):
            detail = 'truncated or damaged (its zip archive lacks the central directory that torch.save writes last)'
        elif isinstance(err, EOFError) or 'EOF' in str(err):
            detail = f'truncated ({type(err).__name__}: {err or "it ends in the middle of its data"})'
        else:
            detail = f'{type(err).__name__}: {err}'
        raise InferenceError(f'cannot read checkpoint {path}: {detail}') from None
    if not isinstance(ckpt, dict):
        raise InferenceError(f'checkpoint {path} holds a {type(ckpt).__name__}, not a state dict')
    if param_key is not None:
        wanted = [param_key] if isinstance(param_key, str) else list(param_key)
        param_key = next((key for key in wanted if key in ckpt), None)
        if param_key is None:
            raise InferenceError(f'checkpoint {path} has no key {" or ".join(map(repr, wanted))}; it has: '
                                 f'{", ".join(map(str, ckpt))}')
        state = ckpt[param_key]
    else:
        param_key = next((key for key in PARAM_KEYS if isinstance(ckpt.get(key), dict)), None)
        state = ckpt if param_key is None else ckpt[param_key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InferenceError(f'checkpoint {path} is not a state dict (keys: {", ".join(map(str, ckpt))}); pass '
                             f'--param-key for the one that holds the weights')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    broken = [k for k, v in state.items() if v.is_floating_point() and torch.isnan(v).any()]
    if broken:  # NaN only: an inf can be meant (a mask buffer)
        raise InferenceError(f'checkpoint {path}' + (f" ['{param_key}']" if param_key else '') + f' has NaN '
                             f'weights in {len(broken)} tensor(s): {_list(broken)}; the net would give NaN images '
                             f'(a training run that diverged, or a damaged file)')
    return state, param_key


def _list(keys, limit=8):
    keys = sorted(keys)
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def check_state_dict(net, state, path, key=None, arch=None, strict=True):
    """Compare a checkpoint's state dict with ``net``'s: the missing, unexpected and mis-shaped keys, named.

    Args:
        net (nn.Module): The network the weights are for.
        state (dict): The checkpoint's state dict (:func:`load_state_dict`).
        path (str): The checkpoint, for messages; ``key``: the checkpoint key it came from.
        arch (str | None): The net's name in messages; None: its class name.
        strict (bool): Raise an :class:`InferenceError` on any difference; otherwise return them. Default: True.

    Returns:
        str: The differences ('' if none), when not ``strict``.
    """
    own = net.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in sorted(set(own) & set(state))
              if state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f'missing keys ({len(missing)}): {_list(missing)}')
    if unexpected:
        problems.append(f'unexpected keys ({len(unexpected)}): {_list(unexpected)}')
    if shapes:
        problems.append(f'shape mismatches (checkpoint vs net) ({len(shapes)}): {_list(shapes, 4)}')
    if problems and strict:
        raise InferenceError(f'checkpoint {path}' + (f" ['{key}']" if key else '') + f' does not fit '
                             f'{arch or type(net).__name__} as configured (wrong arch, or constructor arguments that '
                             'differ from training): ' + '; '.join(problems))
    return '; '.join(problems)


def load_weights(net, path, param_key=None, arch=None, strict=True):
    """Load a checkpoint into ``net`` (:func:`load_state_dict`'s ``param_key``); ``strict``: a mismatch raises an
    :class:`InferenceError` naming the missing, unexpected and mis-shaped keys, else the parameters that fit are
    loaded and the others keep their values. Returns the checkpoint key read."""
    state, key = load_state_dict(path, param_key)
    if check_state_dict(net, state, path, key, arch, strict=strict):
        own = net.state_dict()
        state = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    net.load_state_dict(state, strict=strict)
    return key
