"""Evaluate a trained model on the test sets of a YAML option file with BasicSR's tester.

    python deblurzoo/test.py -opt options/test_svdn_gopro.yml

Results (images, logs) go to ``results/<name>/`` under the repository root, as BasicSR.
"""
from os import path as osp

from deblurzoo import compat  # (patches BasicSR, registers archs/losses/datasets/models)
from basicsr.test import test_pipeline

if __name__ == '__main__':
    test_pipeline(osp.abspath(osp.join(__file__, osp.pardir, osp.pardir)))
    compat.close_distributed()  # every rank finished: tear the process group down together
