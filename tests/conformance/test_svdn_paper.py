"""Conformance with Yuan, Su, Ma, "Efficient Dynamic Scene Deblurring Using Spatially Variant Deconvolution Network
with Optical Flow Guided Training", CVPR 2020 (paper 001): every column of its Table 2 ablation builds and changes
what it should, its size figures ("nearly 0.8M parameters", 3.1 MB) hold, and the shipped GoPro option file carries
the training settings of its Sec. 4.2 and Eq. 7, each with the tolerance given at the check.

Not checkable here: the 0.01 s per 720p image (GTX 1080Ti) and the PSNR figures (they need the trained model).
"""
import math
from pathlib import Path

import pytest
import torch
import yaml

import deblurzoo  # noqa: F401  (registers the archs)
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml
from deblurzoo.archs.arch_util import count_parameters
from deblurzoo.ops import ModulatedDeformConv

OPTIONS = Path(__file__).resolve().parents[2] / 'options'
TINY = dict(num_feat=8, num_conv=1)
GOPRO_TRAIN_PAIRS = 2103  # "we use 2103 image pairs for training"


def _option(name):
    with open(OPTIONS / name) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def test_size_is_nearly_0_8m_parameters_and_3_1_mb():
    """"the proposed network owns the smallest model size, nearly 0.8M parameters"; Table 1: "Model Size ... 3.1 MB"."""
    with torch.device('meta'):
        params = count_parameters(build_network(dict(type='SVDN')))
    assert math.isclose(params, 0.8e6, rel_tol=0.05), params
    assert math.isclose(4 * params / 1e6, 3.1, rel_tol=0.05), 4 * params / 1e6


def _dilations(net):
    return sorted({m.dilation[0] for m in net.backbone.stages.modules() if isinstance(m, torch.nn.Conv2d)})


# Table 2 columns: baseline (rates all 1, neck a residual block); + dilated backbone; + FD module; + OG training
TABLE2 = [
    ('baseline', dict(dilated=False, deform=False), [1], 0),
    ('dilated backbone', dict(dilated=True, deform=False), [1, 2, 4], 0),
    ('FD module', dict(dilated=True, deform=True), [1, 2, 4], 2),
]


@pytest.mark.parametrize('column,switches,rates,num_dcn', TABLE2, ids=[c[0] for c in TABLE2])
def test_table2_columns_build_what_they_say(column, switches, rates, num_dcn):
    """"By setting all the dilation rates of backbone to 1 and replacing the neck with a residual block, we build a
    baseline"; "The dilation rates are set to 1, 2 and 4"; the neck "contains two modulated deformable convolutions"."""
    net = build_network(dict(type='SVDN', **TINY, **switches)).train()
    assert _dilations(net) == rates
    dcns = [m for m in net.modules() if isinstance(m, ModulatedDeformConv)]
    assert len(dcns) == num_dcn
    out, aux = net(torch.rand(1, 3, 16, 16), return_aux=True)
    if num_dcn:  # DCN1's offsets come back for the position loss (the OG-training column): 25 sampling points each
        assert all(m.weight.shape[-2:] == (5, 5) for m in dcns)
        assert aux['offsets'].shape[1] == 2 * 25
    else:
        assert aux == {}
    assert out.shape == (1, 3, 16, 16)


def test_backbone_downsamples_once():
    """"we only use the downsampling operation once"."""
    net = build_network(dict(type='SVDN', **TINY))
    strides = [m.stride[0] for m in net.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides.count(2) == 1 and set(strides) == {1, 2}


def test_og_training_column_is_the_shipped_option_file():
    """Table 2's last column (OG training) and Eq. 7, ``L = L_pixel + lambda_1 L_percep + lambda_2 L_position``, as
    shipped: the position loss on, at the weights our DESIGN reads from the paper (0.5 MSE, 0.01 perceptual, 1e-4)."""
    train = _option('train_svdn_gopro.yml')['train']
    assert train['pixel_opt']['type'] == 'MSELoss' and train['pixel_opt']['loss_weight'] == 0.5
    assert train['perceptual_opt']['type'] == 'VGGPerceptualLoss' and train['perceptual_opt']['loss_weight'] == 0.01
    assert train['position_opt']['type'] == 'PositionLoss' and train['position_opt']['loss_weight'] == 1e-4


def test_training_settings_of_sec_4_2():
    """"The beta_1, beta_2 and epsilon are set to 0.9, 0.9 and 10^-8"; "decay the learning rate from 10^-3 to 10^-6 at
    2000 epochs, and the power ... 0.9"; "Each training batch contains 32 ... patches"; "flipping, rotation, and
    permutation of RGB channels, and then cropped to 256x256"; "We use Xavier to initialize"."""
    opt = _option('train_svdn_gopro.yml')
    optim, sched, train_set = opt['train']['optim_g'], opt['train']['scheduler'], opt['datasets']['train']
    assert (optim['type'], optim['lr'], list(optim['betas']), optim['eps']) == ('Adam', 1e-3, [0.9, 0.9], 1e-8)
    assert (sched['type'], sched['power'], sched['eta_min']) == ('PolyLR', 0.9, 1e-6)
    assert (train_set['batch_size_per_gpu'], train_set['gt_size']) == (32, 256)
    assert train_set['use_hflip'] and train_set['use_rot'] and train_set['use_channel_permute']
    epochs = opt['train']['total_iter'] * train_set['batch_size_per_gpu'] / GOPRO_TRAIN_PAIRS
    assert math.isclose(epochs, 2000, rel_tol=0.01), epochs  # rounded up to a whole thousand iterations
    assert sched['total_iter'] == opt['train']['total_iter']
    net = build_network(dict(type='SVDN', **TINY))
    conv = net.backbone.head[0]  # Xavier normal: std sqrt(2 / (fan_in + fan_out))
    std = math.sqrt(2 / (conv.in_channels * 9 + conv.out_channels * 9))
    assert 0.5 * std < conv.weight.std().item() < 1.5 * std
