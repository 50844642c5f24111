"""AtrousNet (Brehm et al., NTIRE 2020, stage 1): the per-channel scale in place of normalisation, reflection padding,
one block's 11x11 window, [-1, 1] inside, any input size. The paper's layout, sizes and Table 2 ablation are checked in
tests/conformance/test_ntire2020_paper.py."""
import pytest
import torch
from torch import nn

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from deblurzoo.archs.arch_util import ScaledConv2d
from deblurzoo.archs.atrous_arch import AtrousBlock, AtrousNet

TINY = dict(num_feat=4, num_block=2, block_feat=8, branch_feat=4)


def test_no_normalisation_a_learned_scale_reflection_padding_and_leaky_relu():
    net = AtrousNet(**TINY)
    kinds = {type(m) for m in net.modules()}
    assert not any(issubclass(k, nn.modules.batchnorm._NormBase) or k is nn.GroupNorm for k in kinds)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, ScaledConv2d) for m in convs)
    assert all(m.scale.shape == (m.out_channels, ) for m in convs)
    assert all(m.padding_mode == 'reflect' for m in convs)
    acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.PReLU, nn.LeakyReLU))]
    assert acts and all(isinstance(m, nn.LeakyReLU) for m in acts)


def test_scale_multiplies_before_the_bias():
    conv = ScaledConv2d(2, 3, 3)
    x = torch.rand(1, 2, 8, 8)
    with torch.no_grad():
        conv.scale.copy_(torch.tensor([1.0, 2.0, -0.5]))
        plain = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode='reflect'), conv.weight)
        expected = plain * conv.scale.view(1, -1, 1, 1) + conv.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(conv(x), expected)


def test_one_atrous_block_sees_an_11x11_window():
    """Four dilated 3x3 branches (rates 1-4) then a 3x3 conv: the paper's 11x11 receptive field per block."""
    torch.manual_seed(0)
    block = AtrousBlock(num_feat=2, branch_feat=2)
    for m in block.modules():
        if isinstance(m, ScaledConv2d):
            m.padding_mode = 'zeros'  # keep the border out of the measurement
    x = torch.rand(1, 2, 31, 31, requires_grad=True)
    block(x)[0, :, 15, 15].sum().backward()
    rows, cols = torch.nonzero(x.grad.abs().sum(1)[0], as_tuple=True)
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (10, 20, 10, 20)


def test_identity_at_init_and_works_in_minus_one_to_one():
    net = build_network(dict(type='AtrousNet', **TINY))
    seen = {}
    net.head.register_forward_hook(lambda m, inp, out: seen.update(head_in=inp[0]))  # returns None: output kept
    x = torch.rand(2, 3, 20, 18)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 1.0
    torch.testing.assert_close(net(x), x)
    assert seen['head_in'].min() == -1 and seen['head_in'].max() == 1


@pytest.mark.parametrize('size', [(1, 1), (5, 7), (9, 30), (33, 17)])
def test_any_size_in_same_size_out(size):
    net = build_network(dict(type='AtrousNet', **TINY))
    with torch.no_grad():
        for p in net.out.parameters():
            p.normal_(0, 0.1)
    x = torch.rand(1, 3, *size)
    out = net(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_out_ch=1), 'num_out_ch'),
    (dict(head_kernel=8), 'head_kernel'),
    (dict(num_down=0), 'num_down'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AtrousNet(**TINY, **kwargs)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='AtrousNet expects'):
        AtrousNet(**TINY)(torch.rand(1, 3, 3, 8, 8))
