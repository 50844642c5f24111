"""deblurzoo: dynamic-scene motion-deblurring networks as a BasicSR plugin.

Importing this package applies the fixes BasicSR 1.4.2 needs on current torch/torchvision and on CPU
(``deblurzoo.compat``) and registers every architecture, loss, dataset and model into BasicSR's registries; nothing
else in BasicSR changes. deblurzoo's trainer extensions (atomic checkpoints, exact resume, option checks) are enabled
explicitly: ``with deblurzoo.trainer_extensions(): train_pipeline(root)`` (``deblurzoo/train.py`` does so).
"""
from . import compat

compat.apply()

from . import ops  # noqa: E402,F401
from . import archs, data, losses, models  # noqa: E402,F401
from .training import trainer_extensions  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
