import importlib
from os import path as osp

from basicsr.utils import scandir

# import every '*_dataset.py' module in this folder so that importing deblurzoo registers them (as BasicSR does)
_folder = osp.dirname(osp.abspath(__file__))
_names = sorted(osp.splitext(osp.basename(v))[0] for v in scandir(_folder) if v.endswith('_dataset.py'))
_modules = [importlib.import_module(f'deblurzoo.data.{name}') for name in _names]
