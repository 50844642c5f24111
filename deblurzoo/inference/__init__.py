"""The inference engine: checkpoint loading, the restorer and its test-time transforms, media I/O, the CLI on top.

- :mod:`.checkpoint`: the only checkpoint loader (``weights_only``, ``params_ema``/``params``, named key mismatches);
- :mod:`.restorer`: :class:`Restorer`, used by the CLI and by the models' validation/test path alike;
- :mod:`.test_time`: self-ensemble, tiling, frame windows, streams, memory measurement;
- :mod:`.loader`: a net from an arch name or an option file, with its checkpoints (:func:`~.loader.load_model`);
- :mod:`.media`: images and video files in and out;
- :mod:`.cli`: ``deblurzoo-infer``.

Importing this package imports only what the models need (checkpoint, restorer, test-time transforms): the loader
and the CLI, which build on the rest of deblurzoo, are imported from their modules.
"""
from .checkpoint import check_state_dict, load_state_dict, load_weights
from .errors import InferenceError
from .restorer import Restorer
from .test_time import ensemble_size, self_ensemble, tiled

__all__ = ['InferenceError', 'Restorer', 'check_state_dict', 'ensemble_size', 'load_state_dict', 'load_weights',
           'self_ensemble', 'tiled']
