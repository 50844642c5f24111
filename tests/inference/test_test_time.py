"""deblurzoo.inference.test_time. Geometric self-ensemble, for every arch through the models' shared inference:
transforms invert exactly, an equivariant network is unchanged by it, a non-equivariant one gets the average. Tiling
and streams: tiles cover, align and blend; tiled equals untiled for local nets; the memory probe."""
import pytest
import torch
from torch import nn

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.models import build_model
from deblurzoo.inference.test_time import TRANSFORMS, apply_transform, ensemble_size, invert_transform, self_ensemble
from deblurzoo.inference import test_time
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
    x = make_input(net, 1, 20, 20)
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


# ---------------------------------------------------------------------------------------------------------------------
# tiling, streams, memory
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('length,tile,overlap,align',
                         [(100, 64, 16, 16), (257, 96, 64, 32), (64, 64, 16, 16), (30, 64, 16, 16),
                          (1000, 128, 32, 32)])
def test_tiles_are_aligned_overlap_enough_and_cover_the_axis(length, tile, overlap, align):
    starts = test_time.tile_starts(length, tile, overlap, align)
    assert starts[0] == 0 and all(s % align == 0 for s in starts)
    assert min(starts[-1] + tile, length) == length  # the last tile reaches the border
    assert all(a + tile - b >= overlap for a, b in zip(starts, starts[1:]))  # neighbours overlap enough
    weights = torch.zeros(length)
    for s in starts:
        size = min(tile, length - s)
        w = test_time._ramp(s, size, length, overlap, weights)
        assert w.min() >= 0 and w.max() > 0.9
        if s > 0:
            assert (w[:overlap // 4] == 0).all()  # the pixels nearest an inner edge do not count
        weights[s:s + size] += w
    assert weights.min() > 0  # every pixel has weight


def test_tiling_options_are_checked():
    with pytest.raises(ValueError, match='tile_overlap'):
        test_time.tile_boxes(100, 100, 64, -1)
    with pytest.raises(ValueError, match='at least tile_overlap'):
        test_time.tile_boxes(100, 100, 64, 48, 32)


def test_tiled_equals_the_whole_for_a_strided_local_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Upsample(scale_factor=2),
                              torch.nn.Conv2d(8, 3, 3, padding=1))
    x = torch.rand(2, 3, 102, 146)  # a batch; even sizes, which this stride-2 net keeps
    with torch.no_grad():
        torch.testing.assert_close(test_time.tiled(net, x, 64, 32, align=16), net(x), atol=1e-6, rtol=0)
        clips = torch.rand(1, 2, 3, 70, 90)  # clips are tiled on their last two axes
        per_frame = lambda c: torch.stack([net(c[:, i]) for i in range(c.shape[1])], 1)  # noqa: E731
        torch.testing.assert_close(test_time.tiled(per_frame, clips, 64, 32, align=16), per_frame(clips), atol=1e-6,
                                   rtol=0)


def test_streams_give_what_the_tensor_versions_give_per_item():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 5, padding=2)
    items = [torch.rand(1, 3, 70, 90) for _ in range(3)]
    with torch.no_grad():
        ens = list(test_time.ensemble_stream(lambda it: map(net, it), iter(items), 8))
        til = list(test_time.tiled_stream(lambda it: map(net, it), iter(items), 64, 32, 16))
        for x, e, t in zip(items, ens, til):
            torch.testing.assert_close(e, test_time.self_ensemble(net, x, 8))
            torch.testing.assert_close(t, net(x), atol=1e-6, rtol=0)
    assert list(test_time.tiled_stream(lambda it: map(net, it), iter([]), 64)) == []
    with pytest.raises(ValueError, match='every frame must be'):
        list(test_time.tiled_stream(lambda it: map(net, it), iter([items[0], torch.rand(1, 3, 60, 90)]), 64, 32, 16))


def test_peak_memory_counts_what_is_alive_together():
    x = torch.rand(1, 8, 64, 64)
    one = x.numel() * 4

    def fn(t):
        a = t * 2  # one
        b = a + 1  # two alive
        del a
        return b * 3  # two alive again

    peak, out = test_time.measure_peak_memory(fn, x)
    assert peak == 2 * one and out.shape == x.shape
    assert test_time.plan_tile({64: 1000 + 64 * 64 * 10, 128: 1000 + 128 * 128 * 10}, 10**9, 720, 1280) is None
    side = test_time.plan_tile({64: 1000 + 64 * 64 * 10, 128: 1000 + 128 * 128 * 10}, 1000 + 200 * 200 * 10, 720, 1280)
    assert side == 200
    with pytest.raises(MemoryError, match='64x64'):
        test_time.plan_tile({64: 64 * 64 * 10, 128: 128 * 128 * 10}, 100, 720, 1280)
