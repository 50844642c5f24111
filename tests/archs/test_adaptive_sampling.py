"""The adaptive-sampling pieces: grids, the gather path against the dense path, scatter/gather round trips, the
sampler's policies and budgets, and the multi-patch helpers."""
import pytest
import torch

from deblurzoo.archs.adaptive_sampling import PixelSampler, level_budgets
from deblurzoo.archs.patch_hierarchy import merge_patches, pair_patch_tokens, split_patches
from deblurzoo.archs.sample_grid import LevelMap, SampleGrid, make_fallback
from deblurzoo.archs.token_ops import TokenConv, pixel_dependent_filter, scatter_to


def _as_sampled(grid):
    """The same pixels without the lattice flag: ops take the gather path."""
    return SampleGrid(grid.flat, grid.size, grid.spacing)


@pytest.mark.parametrize('spacing', [1, 2, 4])
def test_gather_path_equals_dense_path_on_lattices(spacing):
    """On a uniform lattice the gather path (used for sampled pixels) reproduces conv, stride-2 conv and modulated
    deformable conv -- outputs and all gradients, in float64, including integer offsets and the image border."""
    torch.manual_seed(0)
    b, c, size = 2, 5, (13, 10)
    lattice = SampleGrid.uniform(b, size, spacing, 'cpu')
    sampled = _as_sampled(lattice)
    tokens = torch.randn(b, lattice.num, c, dtype=torch.float64, requires_grad=True)
    conv = TokenConv(c, 4).double()
    for anchors in (None, 'down'):
        kw = {}
        if anchors:
            kw_dense = {'anchors': SampleGrid.uniform(b, size, 2 * spacing, 'cpu')}
            kw = {'anchors': _as_sampled(kw_dense['anchors'])}
        else:
            kw_dense = {}
        dense = conv(LevelMap(tokens, lattice), **kw_dense)
        gathered = conv(LevelMap(tokens, sampled), **kw)
        torch.testing.assert_close(gathered, dense, rtol=0, atol=1e-12)

    weight = torch.randn(4, c, 3, 3, dtype=torch.float64)
    bias = torch.randn(4, dtype=torch.float64)
    kernel = torch.rand(b, lattice.num, 9, dtype=torch.float64, requires_grad=True)
    offsets = (2 * torch.randn(b, lattice.num, 9, 2, dtype=torch.float64))
    offsets[0, :4] = offsets[0, :4].round()  # integer offsets: the one-sided bilinear gradient must match too
    offsets.requires_grad_()
    outs = [pixel_dependent_filter(LevelMap(tokens, g), weight, bias, kernel, offsets) for g in (lattice, sampled)]
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-12)
    grads = [torch.autograd.grad((o * torch.arange(o.numel()).view_as(o)).sum(), [tokens, kernel, offsets])
             for o in outs]
    for dense_grad, gathered_grad in zip(*grads):
        torch.testing.assert_close(gathered_grad, dense_grad, rtol=1e-10, atol=1e-10)


def test_pdf_with_unit_kernel_and_no_offsets_is_a_plain_conv():
    torch.manual_seed(0)
    grid = SampleGrid.uniform(1, (9, 11), 1, 'cpu')
    tokens = torch.randn(1, grid.num, 3)
    weight, bias = torch.randn(6, 3, 3, 3), torch.randn(6)
    out = pixel_dependent_filter(LevelMap(tokens, grid), weight, bias, torch.ones(1, grid.num, 9), None)
    ref = torch.nn.functional.conv2d(LevelMap(tokens, grid).dense(), weight, bias, padding=1)
    torch.testing.assert_close(out, ref.flatten(2).transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_grid_inverse_mask_and_reads():
    flat = torch.tensor([[0, 5, 7], [2, 3, 11]])
    grid = SampleGrid(flat, (3, 4), 2)
    inv = grid.inverse()
    assert inv.shape == (2 * 12, )
    assert inv[5].item() == 1 and inv[12 + 11].item() == 5 and inv[1].item() == -1
    assert grid.mask().sum().item() == 6 and grid.mask()[1, 0, 2, 3].item() == 1
    tokens = torch.arange(6, dtype=torch.float32).view(2, 3, 1)
    fallback_calls = []

    def fallback(gidx):
        fallback_calls.append(gidx.clone())
        return -torch.ones(len(gidx), 1)

    level = LevelMap(tokens, grid, fallback)
    y = torch.tensor([[0, 1, 5], [0, 2, -1]])
    x = torch.tensor([[0, 1, 0], [3, 3, 0]])
    got = level.read_pixels(y, x)[..., 0]
    # (0,0) sampled -> 0; (1,1)=5 sampled -> 1; outside -> 0; (0,3)=3 sampled in image 1 -> 4; (2,3)=11 -> 5; outside
    assert got.tolist() == [[0.0, 1.0, 0.0], [4.0, 5.0, 0.0]]
    got = level.read_pixels(torch.tensor([[2], [0]]), torch.tensor([[2], [0]]))  # (2,2)=10 and (0,0)=0: not sampled
    assert got[..., 0].tolist() == [[-1.0], [-1.0]]
    # the fallback is computed only at the unsampled pixels read (batch-flattened), each once: no whole-level map
    assert [c.tolist() for c in fallback_calls] == [[10, 12]]
    level.read_pixels(torch.tensor([[2], [0]]), torch.tensor([[2], [0]]))
    assert len(fallback_calls) == 1
    assert level.read(torch.tensor([5, 13, 10])).flatten().tolist() == [1.0, -1.0, -1.0]  # tokens, fallback if missed
    assert [c.tolist() for c in fallback_calls] == [[10, 12], [13]]


def test_scatter_then_read_round_trips():
    """Scattering coarse tokens into the finer level puts them at their pixels and keeps the skip elsewhere."""
    torch.manual_seed(0)
    b, size = 2, (8, 8)
    sampler = PixelSampler(3, 4, num_levels=3)
    grids, _ = sampler(torch.rand(b, 3, *size), 'greedy')
    fine, coarse = grids
    fine_tokens = torch.randn(b, fine.num, 4)
    coarse_tokens = torch.randn(b, coarse.num, 4)
    out = scatter_to(fine_tokens, fine, coarse_tokens, coarse)
    h, w = size
    read = LevelMap(out, fine).read_pixels(coarse.flat // w, coarse.flat % w)
    torch.testing.assert_close(read, coarse_tokens)
    kept = ~torch.isin(fine.flat, coarse.flat) if b == 1 else torch.stack(
        [~torch.isin(fine.flat[i], coarse.flat[i]) for i in range(b)])
    torch.testing.assert_close(out[kept], fine_tokens[kept])
    with pytest.raises(RuntimeError, match='not nested'):
        scatter_to(coarse_tokens, coarse, fine_tokens, fine)


def test_fallback_is_the_projected_skip_and_computed_once():
    torch.manual_seed(0)
    finer_grid = SampleGrid.uniform(1, (4, 4), 1, 'cpu')
    finer = LevelMap(torch.randn(1, 16, 3), finer_grid)
    calls = []
    proj = torch.nn.Linear(3, 5)

    def counting_proj(x):
        calls.append(len(x))
        return proj(x)

    fallback = make_fallback(counting_proj, finer)
    a = fallback(torch.tensor([3, 7]))
    b = fallback(torch.tensor([7, 7]))
    torch.testing.assert_close(a, proj(finer.tokens[0, [3, 7]]))
    torch.testing.assert_close(b[1], a[1])
    assert calls == [2], 'projected at the pixels read only, each once'
    fallback(torch.tensor([9, 3, 9]))
    assert calls == [2, 1]
    assert fallback.count == 3 and fallback.rows(torch.tensor([3, 7, 9])).tolist() == [0, 1, 2]


def test_released_fallback_is_recomputed_and_conv_plans_follow():
    """A level's fallback freed by the decoder (release) is computed again when read; the convs' cached tap rows,
    which point into it, are worked out again instead of reading stale rows."""
    torch.manual_seed(0)
    size = (6, 8)
    finer = LevelMap(torch.randn(1, 48, 3), SampleGrid.uniform(1, size, 1, 'cpu'))
    grid = SampleGrid(torch.tensor([[0, 5, 9, 20, 30, 47]]), size, 2)
    level = LevelMap(torch.randn(1, 6, 4), grid, make_fallback(torch.nn.Linear(3, 4), finer))
    conv = TokenConv(4, 2)
    with torch.no_grad():
        before = conv(level)
        level.fallback(torch.tensor([44, 1]))  # other pixels first: new rows after the release
        level.fallback.release()
        assert level.fallback.count == 0
        level.fallback(torch.tensor([44, 1]))
        torch.testing.assert_close(conv(level), before)


@pytest.mark.parametrize('ratio', [1.0, 0.5, 1.5])
def test_sampler_budgets_nesting_and_policies(ratio):
    torch.manual_seed(0)
    b, size = 3, (16, 12)
    sampler = PixelSampler(4, 8, num_levels=3, sample_ratio=ratio)
    feat = torch.randn(b, 4, *size)
    budgets = level_budgets(size, 3, ratio)
    assert budgets == [round(ratio * 8 * 6), round(ratio * 4 * 3)]
    for policy in ('greedy', 'sample'):
        grids, info = sampler(feat, policy)
        assert [g.num for g in grids] == budgets
        for i in range(b):
            level1, level2 = set(grids[0].flat[i].tolist()), set(grids[1].flat[i].tolist())
            assert len(level1) == budgets[0] and level2 <= level1, 'levels must be distinct and nested'
        assert info['budget'].tolist() == [budgets[0]] * b
        assert info['prob'].shape == (b, 1, *size)
    grids, info = sampler(feat, 'greedy')
    prob = info['prob'].flatten(1)
    top = prob.topk(budgets[0], dim=1).indices.sort(dim=1).values
    assert torch.equal(grids[0].flat, top), 'greedy takes the top-N pixels by probability'
    grids, _ = sampler(feat, 'uniform')
    assert [g.lattice for g in grids] == [(8, 6), (4, 3)]


def _largest(values):
    return torch.cat([values, values.new_zeros(1)]).max()


def test_sampled_log_prob_is_the_bernoulli_log_likelihood():
    torch.manual_seed(0)
    sampler = PixelSampler(2, 4, num_levels=2)
    feat = torch.randn(2, 2, 6, 6)
    torch.manual_seed(3)
    grids, info = sampler(feat, 'sample')
    torch.manual_seed(3)
    logit = sampler.head(feat)
    drawn = torch.bernoulli(torch.sigmoid(logit).flatten(1)).view_as(logit)
    p = torch.sigmoid(logit)
    expected = drawn * torch.log(p) + (1 - drawn) * torch.log(1 - p)
    torch.testing.assert_close(info['log_prob'], expected, rtol=1e-5, atol=1e-6)
    assert info['num_selected'].tolist() == drawn.flatten(1).sum(1).long().tolist()
    # one rule (Sec. 3.1.1): rank the drawn pixels first, each group by P, and take the first N -- more than N drawn
    # keep the N most probable, fewer are topped up by P
    prob = p.flatten(1)
    for i in range(2):
        chosen = torch.zeros(36, dtype=torch.bool)
        chosen[grids[0].flat[i]] = True
        is_drawn = drawn[i].flatten().bool()
        if is_drawn.sum() >= grids[0].num:
            assert not (chosen & ~is_drawn).any()
            assert prob[i][chosen].min() >= _largest(prob[i][is_drawn & ~chosen])
        else:
            assert not (is_drawn & ~chosen).any()
            assert prob[i][chosen & ~is_drawn].min() >= _largest(prob[i][~is_drawn & ~chosen])


def test_sampler_rejects_unknown_policy():
    with pytest.raises(ValueError, match='policy'):
        PixelSampler(2, 4)(torch.randn(1, 2, 8, 8), 'random')


def test_patch_split_merge_and_token_pairing():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    for num in (1, 2, 4):
        assert torch.equal(merge_patches(split_patches(x, num), num), x)
    quads = split_patches(x, 4)  # (row, col, image): tl0 tl1 tr0 tr1 bl0 bl1 br0 br1
    assert torch.equal(quads[2], x[0, :, :4, 4:])
    tokens = quads.flatten(2).transpose(1, 2)  # (8, 16, 1)
    halves = pair_patch_tokens(tokens, 4)  # top of image 0 = tl0 + tr0
    assert halves.shape == (4, 32, 1)
    assert torch.equal(halves[0], torch.cat([tokens[0], tokens[2]]))
    assert torch.equal(halves[3], torch.cat([tokens[5], tokens[7]]))
