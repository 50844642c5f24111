"""Train a deblurzoo (or any BasicSR) model from a YAML option file with BasicSR's trainer and deblurzoo's trainer
extensions (atomic checkpoints, exact mid-epoch resume, option checks: ``deblurzoo.training``).

    python deblurzoo/train.py -opt options/train_svdn_gopro.yml [--auto_resume] [--launcher pytorch]
    torchrun --nproc_per_node=2 deblurzoo/train.py -opt options/train_svdn_gopro.yml --launcher pytorch

Experiments and tensorboard logs go to ``experiments/`` and ``tb_logger/`` under the repository root, as BasicSR.
"""
from os import path as osp

from deblurzoo import compat, trainer_extensions  # (fixes BasicSR, registers archs/losses/datasets/models)
from basicsr.train import train_pipeline

if __name__ == '__main__':
    with trainer_extensions():
        train_pipeline(osp.abspath(osp.join(__file__, osp.pardir, osp.pardir)))
    compat.close_distributed()  # every rank finished: tear the process group down together
