"""Geometric self-ensemble (deblurzoo.models.test_time), for every arch through the models' shared inference:
transforms invert exactly, an equivariant network is unchanged by it, a non-equivariant one gets the average."""
import pytest
import torch
from torch import nn

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.models import build_model
from deblurzoo.models.test_time import TRANSFORMS, apply_transform, ensemble_size, invert_transform, self_ensemble
from arch_inputs import make_input
from test_registry import ARCHS, TINY


def _symmetric_conv(ch, seed):
    """A 3x3 conv whose kernels are invariant under flips and quarter turns (corner a, edge b, centre c)."""
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(ch, ch, 3, padding=1)
    a, b, c = (torch.randn(ch, ch, 1, 1, generator=g) for _ in range(3))
    pattern = torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 0, 1]]), torch.tensor([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]])
    with torch.no_grad():
        conv.weight.copy_(a * pattern[0] + b * pattern[1] + c * torch.tensor([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]))
    return conv


def _equivariant_net():
    return nn.Sequential(_symmetric_conv(3, 0), nn.LeakyReLU(0.2), _symmetric_conv(3, 1)).eval()


def _skewed_net():
    torch.manual_seed(0)
    return nn.Conv2d(3, 3, 3, padding=1).eval()


@pytest.mark.parametrize('num', [4, 6, 8])
def test_transforms_are_distinct_and_invert_exactly(num):
    x = torch.rand(2, 3, 5, 7)
    outs = [apply_transform(x, *t) for t in TRANSFORMS[num]]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == num, 'a transform repeats'
    for (flip, k), out in zip(TRANSFORMS[num], outs):
        torch.testing.assert_close(invert_transform(out, flip, k), x, rtol=0, atol=0)


def test_the_sets():
    """4: the flips and 180-degree turn (h, w kept); 6: the authors' identity, flips and three turns; 8: all."""
    shapes = {num: {apply_transform(torch.zeros(5, 7), *t).shape for t in TRANSFORMS[num]} for num in (4, 6, 8)}
    assert shapes[4] == {(5, 7)} and shapes[6] == shapes[8] == {(5, 7), (7, 5)}
    assert set(TRANSFORMS[4]) < set(TRANSFORMS[6]) < set(TRANSFORMS[8])


@pytest.mark.parametrize('num', [4, 6, 8])
def test_equivariant_network_is_unchanged(num):
    net = _equivariant_net()
    x = torch.rand(1, 3, 12, 17, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # equal up to float32 summation order (rotated kernels add in another order)
        torch.testing.assert_close(self_ensemble(net, x, num), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('num', [4, 6, 8])
def test_other_networks_get_the_average_of_the_transformed_runs(num):
    net = _skewed_net()
    x = torch.rand(1, 3, 12, 17)
    with torch.no_grad():
        out = self_ensemble(net, x, num)
        expected = torch.stack([invert_transform(net(apply_transform(x, *t)), *t) for t in TRANSFORMS[num]]).mean(0)
        torch.testing.assert_close(out, expected)
        assert (out - net(x)).abs().max() > 1e-3


def test_clips_and_resized_outputs():
    """The last two axes are transformed: (b, t, c, h, w) clips, and outputs of another size (an x2 SR net)."""
    x = torch.rand(1, 2, 3, 6, 9)
    torch.testing.assert_close(self_ensemble(lambda v: v * 2, x, 8), x * 2)
    up = nn.Upsample(scale_factor=2, mode='nearest')
    torch.testing.assert_close(self_ensemble(up, x[:, 0], 8), up(x[:, 0]))


@pytest.mark.parametrize('value,size', [(None, 1), (False, 1), (0, 1), (True, 8), (4, 4), (6, 6), (8, 8)])
def test_option_values(value, size):
    assert ensemble_size(value) == size


@pytest.mark.parametrize('value', [3, 'yes', 2.0])
def test_bad_option_value_is_named(value):
    with pytest.raises(ValueError, match='val.self_ensemble'):
        ensemble_size(value)


@pytest.mark.parametrize('name', ARCHS)
def test_every_registered_arch_runs_with_it(name):
    torch.manual_seed(0)
    net = build_network({'type': name, **TINY[name]}).eval()
    x = make_input(name, 1, 20, 20)
    with torch.no_grad():
        plain, ensembled = net(x), self_ensemble(net, x, 8)
    assert ensembled.shape == plain.shape and torch.isfinite(ensembled).all()


def test_basicsr_arch_through_a_model(tmp_path):
    """``val.self_ensemble`` in a DeblurModel running one of BasicSR's own archs (an x2 SR net)."""
    opt = {
        'name': 'ens', 'model_type': 'DeblurModel', 'is_train': False, 'num_gpu': 0, 'dist': False, 'scale': 2,
        'network_g': {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 2},
        'path': {'pretrain_network_g': None}, 'val': {'self_ensemble': 8},
    }
    model = build_model(opt)
    lq = torch.rand(1, 3, 10, 14)
    model.feed_data({'lq': lq})
    model.test()
    net = model.net_g.eval()
    with torch.no_grad():
        expected = torch.stack([invert_transform(net(apply_transform(lq, *t)), *t) for t in TRANSFORMS[8]]).mean(0)
    torch.testing.assert_close(model.output, expected)


def test_bad_option_fails_when_the_model_is_built(tmp_path):
    opt = {
        'name': 'ens', 'model_type': 'DeblurModel', 'is_train': False, 'num_gpu': 0, 'dist': False, 'scale': 1,
        'network_g': {'type': 'AtrousNet', **TINY['AtrousNet']}, 'path': {'pretrain_network_g': None},
        'val': {'self_ensemble': 5},
    }
    with pytest.raises(ValueError, match='val.self_ensemble'):
        build_model(opt)
