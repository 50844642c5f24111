"""AtrousNet (Brehm et al., NTIRE 2020, stage 1): the paper's sizes and blocks, the Table 2 ablation switch, the
per-channel scale in place of normalisation, reflection padding, [-1, 1] inside, any input size."""
import pytest
import torch
from torch import nn

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from deblurzoo.archs.arch_util import ScaledConv2d, ScaledConvTranspose2d, ScaledResBlock, count_parameters
from deblurzoo.archs.atrous_arch import AtrousBlock, AtrousNet

TINY = dict(num_feat=4, num_block=2, block_feat=8, branch_feat=4)


def test_default_is_the_papers_47m_parameter_network():
    net = AtrousNet()
    params = count_parameters(net)
    assert abs(params - 47e6) / 47e6 < 0.10, params
    assert len(net.blocks) == 20 and all(isinstance(b, AtrousBlock) for b in net.blocks)
    assert net.head[0].kernel_size == (9, 9) and net.head[0].out_channels == 64
    assert len(net.downs) == 1 and net.downs[0][0].stride == (2, 2) and net.downs[0][0].out_channels == 128
    block = net.blocks[0]
    assert [b[0].dilation for b in block.branches] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert all(b[0].in_channels == 256 and b[0].out_channels == 128 for b in block.branches)
    assert (block.fuse[0].in_channels, block.fuse[0].out_channels, block.fuse[0].kernel_size) == (512, 256, (3, 3))
    up = net.ups[0][0]  # the blocks' 256 channels concatenated with the stride-2 skip's 128
    assert isinstance(up, ScaledConvTranspose2d) and (up.in_channels, up.out_channels) == (384, 128)
    assert (net.tail[0].out_channels, net.out.out_channels) == (64, 3)


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


def test_atrous_false_is_the_papers_ablation():
    """Table 2's "w/o atrous conv": standard residual blocks at rate 1; with its three down-samplings, 12 blocks of 512
    it has more parameters than the atrous net (the paper: "our proposed atrous residual network has fewer")."""
    net = AtrousNet(atrous=False, num_down=3, num_block=12, block_feat=512)
    assert all(isinstance(b, ScaledResBlock) for b in net.blocks) and len(net.blocks) == 12
    assert all(m.dilation == (1, 1) for m in net.modules() if isinstance(m, nn.Conv2d))
    assert len(net.downs) == 3 and net.multiple == 8
    assert count_parameters(net) > count_parameters(AtrousNet())
    small = AtrousNet(atrous=False, num_down=3, num_block=1, block_feat=8, num_feat=4)
    x = torch.rand(1, 3, 21, 35)
    assert small(x).shape == x.shape


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
