"""deblurzoo: dynamic-scene motion-deblurring networks as a BasicSR plugin.

Importing this package patches BasicSR 1.4.2's known breakages (``deblurzoo.compat``) and registers every
architecture, loss, dataset and model into BasicSR's registries.
"""
from . import compat

compat.apply()

from . import ops  # noqa: E402,F401
from . import archs, data, losses, models  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
