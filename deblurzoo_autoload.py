"""Let BasicSR's own entry points find deblurzoo: ``python -m basicsr.train -opt options/demo/train_svdn_demo.yml``.

BasicSR has no plugin discovery, so installing deblurzoo also installs ``deblurzoo-autoload.pth`` into site-packages;
Python runs its one line, ``import deblurzoo_autoload``, at start-up. This module is that line's whole cost: it imports
nothing but the standard library's ``os`` and ``sys`` and puts a finder on ``sys.meta_path`` that waits for the
``basicsr`` package. When (and only when) a program imports BasicSR, the finder lets the real package load with the one
fix its own imports need first (:func:`add_functional_tensor_shim`), then imports :mod:`deblurzoo`, which applies the
rest of ``deblurzoo.compat`` and registers deblurzoo's archs, losses, datasets and models. BasicSR's trainer stays
BasicSR's: deblurzoo's trainer extensions are enabled only by ``deblurzoo/train.py``, ``deblurzoo/test.py`` and
``deblurzoo.training.trainer_extensions()``.

``DEBLURZOO_NO_AUTOLOAD=1`` (any value but empty or ``0``) turns this off; then only ``import deblurzoo`` registers.
"""
import os
import sys

ENV = 'DEBLURZOO_NO_AUTOLOAD'
FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'


def add_functional_tensor_shim():
    """BasicSR #649: ``basicsr/data/degradations.py`` imports ``torchvision.transforms.functional_tensor``, removed in
    torchvision 0.17, so ``import basicsr`` fails. Provide the one function it uses under the old module name (kept
    here, not in ``deblurzoo.compat``, because it must run before BasicSR, and so before ``deblurzoo``, is imported)."""
    if FUNCTIONAL_TENSOR in sys.modules:
        return
    import importlib
    import types
    try:
        importlib.import_module(FUNCTIONAL_TENSOR)
    except ImportError:
        from torchvision.transforms import functional
        shim = types.ModuleType(FUNCTIONAL_TENSOR)
        shim.rgb_to_grayscale = functional.rgb_to_grayscale
        sys.modules[FUNCTIONAL_TENSOR] = shim


class _BasicSRLoader:
    """BasicSR's own loader, with the shim before its code runs and ``import deblurzoo`` after."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        add_functional_tensor_shim()
        self.loader.exec_module(module)
        try:
            import deblurzoo  # noqa: F401  (compat fixes, then registration)
        except Exception as err:  # noqa: BLE001 - a broken plugin must not break BasicSR itself
            import warnings
            warnings.warn(f'deblurzoo could not register into BasicSR ({type(err).__name__}: {err}); `import '
                          f'deblurzoo` shows the full error; {ENV}=1 turns this automatic import off', stacklevel=2)

    def __getattr__(self, name):  # get_code, get_source, is_package, resource readers: BasicSR's loader answers
        if name == 'loader':  # not set yet (a copy): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


class BasicSRFinder:
    """A ``sys.meta_path`` finder that answers only for the top-level ``basicsr`` package, once."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != 'basicsr':
            return None
        uninstall()  # once, and so that the lookup below finds BasicSR where the other finders do
        from importlib.util import find_spec
        spec = find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _BasicSRLoader(spec.loader)
        return spec


def enabled():
    """False when ``DEBLURZOO_NO_AUTOLOAD`` is set (to anything but '' or '0')."""
    return os.environ.get(ENV, '') in ('', '0')


def install():
    """Put :class:`BasicSRFinder` first on ``sys.meta_path`` (unless disabled, or BasicSR is already imported)."""
    if enabled() and 'basicsr' not in sys.modules and BasicSRFinder not in sys.meta_path:
        sys.meta_path.insert(0, BasicSRFinder)


def uninstall():
    if BasicSRFinder in sys.meta_path:
        sys.meta_path.remove(BasicSRFinder)


install()
