"""Evaluate a trained model on the test sets of a YAML option file with BasicSR's tester and deblurzoo's trainer
extensions (option checks, checked network loading: ``deblurzoo.training``).

    python deblurzoo/test.py -opt options/test_svdn_gopro.yml

Results (images, logs) go to ``results/<name>/`` under the repository root, as BasicSR.
"""
from os import path as osp

from deblurzoo import compat, trainer_extensions  # (fixes BasicSR, registers archs/losses/datasets/models)
from basicsr.test import test_pipeline

if __name__ == '__main__':
    with trainer_extensions():
        test_pipeline(osp.abspath(osp.join(__file__, osp.pardir, osp.pardir)))
    compat.close_distributed()  # every rank finished: tear the process group down together
