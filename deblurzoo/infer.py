"""``python -m deblurzoo.infer``: the ``deblurzoo-infer`` command line (it lives in :mod:`deblurzoo.inference.cli`).

The inference engine is :mod:`deblurzoo.inference` (checkpoints, restorer, media I/O); import from there.
"""
import sys

from deblurzoo.inference.cli import main

if __name__ == '__main__':
    sys.exit(main())
