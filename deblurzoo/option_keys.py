"""Checks of an option file's ``type:`` names and constructor keys, with the closest valid name suggested.

BasicSR builds archs and losses with ``cls(**opt)`` and looks names up with ``Registry.get``: a typo in a key fails
with Python's bare "__init__() got an unexpected keyword argument" (no accepted keys, no hint) and an unknown name with
a bare KeyError. :func:`check_options` checks a whole option dict before anything is built; :func:`registered` and
:func:`check_constructor_keys` check one entry. Used by deblurzoo's trainer extension and by the inference CLI.
"""
import difflib
import inspect


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


def registered(registry, name, where=''):
    """The class ``registry`` holds for ``name`` (or BasicSR's ``<name>_basicsr``, as ``Registry.get`` finds it); a
    KeyError names the registry, the unknown ``type:`` (at ``where``), the closest registered name and all of them."""
    cls = registry._obj_map.get(name) or registry._obj_map.get(f'{name}_basicsr')
    if cls is None:
        known = ', '.join(sorted(registry._obj_map))
        raise KeyError(f"{where + ': ' if where else ''}Unknown type '{name}' in the '{registry._name}' registry"
                       f'{did_you_mean(name, registry._obj_map)} (check `type:` in your option file; did you `import '
                       f'deblurzoo`?). Registered: {known}')
    return cls


def check_entry(registry, entry, what, where):
    """Check one ``{type: ..., <constructor keys>}`` entry of an option file (``what``: 'network', 'loss')."""
    name = entry['type']
    check_constructor_keys(registered(registry, name, f'{where}.type'), {k: v for k, v in entry.items() if k != 'type'},
                           f"{what} type '{name}'")


def check_options(opt):
    """Check every ``type:`` of a BasicSR option dict and the constructor keys of its networks and losses: the model
    (``model_type``), the networks (top-level ``network_*``), the losses (``train.*_opt``) and the datasets
    (``datasets.*.type``; datasets take the whole dict, so only their names are checked)."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

    if opt.get('model_type') is not None:
        registered(MODEL_REGISTRY, opt['model_type'], 'model_type')
    for key, entry in opt.items():
        if key.startswith('network_') and isinstance(entry, dict) and 'type' in entry:
            check_entry(ARCH_REGISTRY, entry, 'network', key)
    for key, entry in (opt.get('train') or {}).items():
        if key.endswith('_opt') and isinstance(entry, dict) and 'type' in entry:
            check_entry(LOSS_REGISTRY, entry, 'loss', f'train.{key}')
    for phase, entry in (opt.get('datasets') or {}).items():
        if isinstance(entry, dict) and 'type' in entry:
            registered(DATASET_REGISTRY, entry['type'], f'datasets.{phase}.type')
