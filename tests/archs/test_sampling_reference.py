"""SAPHNet's adaptive path against a straightforward reference (issue: sampled levels at the cost their MACs say).

The reference reads a sampled level the obvious way: the level's features as a dense full-resolution map (the
fallback -- the projected encoder skip -- at every pixel, the sampled pixels' tokens on top), each convolution tap and
each bilinear corner of the pixel-dependent filter indexed from that map one tap at a time, scatters by a dense
write. A tiny SAPHNet and DMPHN must give the same pixels, outputs and gradients with the reference ops swapped in.
"""
import json

import pytest
import torch
import torch.nn.functional as F

import deblurzoo.archs.patch_hierarchy as patch_hierarchy
import deblurzoo.archs.saphn_arch as saphn_arch
import deblurzoo.archs.token_ops as token_ops
from deblurzoo.archs.dmphn_arch import DMPHN
from deblurzoo.archs.sample_grid import LevelMap
from deblurzoo.archs.saphn_arch import SAPHNet
from deblurzoo.archs.token_ops import TokenConv, pixel_dependent_filter
from data_factory import load_script

TINY = dict(num_feat=4, num_block=(1, 1, 2), sampler_feat=4)


def dense_map(level_map):
    """(b, H * W, c): the level's features at every full-resolution pixel."""
    grid = level_map.grid
    b, n, c = level_map.tokens.shape
    hw = grid.size[0] * grid.size[1]
    if level_map.fallback is None:
        base = level_map.tokens.new_zeros(b, hw, c)
    else:
        base = level_map.fallback(torch.arange(b * hw)).view(b, hw, c)
    return base.scatter(1, grid.flat[..., None].expand(b, n, c), level_map.tokens)


def read_dense(dense, size, y, x):
    """``dense`` (b, H * W, c) at integer positions y, x (b, n); zero outside the image -> (b, n, c)."""
    h, w = size
    inside = ((y >= 0) & (y < h) & (x >= 0) & (x < w)).to(dense.dtype)[..., None]
    pix = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1))
    return torch.gather(dense, 1, pix[..., None].expand(-1, -1, dense.shape[2])) * inside


def reference_taps(level_map, k, anchors=None, spacing=None, offsets=None):
    """(b, n, k * k, c): tap j of anchor p at p + spacing * (t_j + offset_j), bilinear from the anchor's lattice."""
    grid = level_map.grid
    anchors = grid.flat if anchors is None else anchors
    spacing = grid.spacing if spacing is None else spacing
    dense = dense_map(level_map)
    w = grid.size[1]
    ay, ax = anchors // w, anchors % w
    taps = []
    for j in range(k * k):
        ty, tx = j // k - k // 2, j % k - k // 2
        if offsets is None:
            taps.append(read_dense(dense, grid.size, ay + spacing * ty, ax + spacing * tx))
            continue
        fy, fx = ty + offsets[:, :, j, 0], tx + offsets[:, :, j, 1]
        y0, x0 = fy.detach().floor(), fx.detach().floor()
        value = 0
        for dy in (0, 1):
            for dx in (0, 1):
                wy = (fy - y0) if dy else (1 - (fy - y0))
                wx = (fx - x0) if dx else (1 - (fx - x0))
                corner = read_dense(dense, grid.size, ay + spacing * (y0.long() + dy), ax + spacing * (x0.long() + dx))
                value = value + corner * (wy * wx)[..., None]
        taps.append(value)
    return torch.stack(taps, 2)


def concatenated(maps):
    """One LevelMap of the channels of ``maps`` (one grid) concatenated; its fallback is theirs concatenated."""
    fallbacks = [m.fallback for m in maps]
    fallback = None if fallbacks[0] is None else (lambda gidx: torch.cat([f(gidx) for f in fallbacks], dim=1))
    return LevelMap(torch.cat([m.tokens for m in maps], dim=2), maps[0].grid, fallback)


def reference_token_conv(self, level_map, anchors=None):
    if isinstance(level_map, (list, tuple)):
        level_map = concatenated(level_map)
    grid = level_map.grid
    target = grid if anchors is None else anchors
    if grid.lattice is not None and target.lattice is not None:
        out = F.conv2d(level_map.dense(), self.weight, self.bias, target.spacing // grid.spacing, self.padding)
        return out.flatten(2).transpose(1, 2)
    taps = reference_taps(level_map, self.kernel_size[0], target.flat, grid.spacing)
    out = torch.einsum('bnjc,ocj->bno', taps, self.weight.flatten(2))
    return out if self.bias is None else out + self.bias


def reference_pdf(level_map, weight, bias, kernel, offsets):
    if level_map.grid.lattice is not None:
        return pixel_dependent_filter(level_map, weight, bias, kernel, offsets)
    taps = reference_taps(level_map, int(weight.shape[-1]), offsets=offsets) * kernel[..., None]
    out = torch.einsum('bnjc,ocj->bno', taps, weight.flatten(2))
    return out if bias is None else out + bias


def reference_uniform_tokens(self):
    grid = self.grid
    if grid.lattice is not None:
        return self.tokens
    h, w = grid.size
    ys, xs = torch.meshgrid(torch.arange(0, h, grid.spacing), torch.arange(0, w, grid.spacing), indexing='ij')
    y, x = ys.reshape(1, -1).expand(grid.batch, -1), xs.reshape(1, -1).expand(grid.batch, -1)
    return read_dense(dense_map(self), grid.size, y, x)


def reference_scatter(finer_tokens, finer_grid, coarse_tokens, coarse_grid):
    b, n, c = finer_tokens.shape
    hw = finer_grid.size[0] * finer_grid.size[1]
    rows = torch.full((b, hw), -1, dtype=torch.long)
    rows.scatter_(1, finer_grid.flat, torch.arange(n).expand(b, n))
    where = torch.gather(rows, 1, coarse_grid.flat)  # (b, n_c): the coarse pixels' rows among the finer tokens
    assert (where >= 0).all()
    return finer_tokens.scatter(1, where[..., None].expand(-1, -1, c), coarse_tokens)


@pytest.fixture
def reference(monkeypatch):
    def swap():
        monkeypatch.setattr(TokenConv, 'forward', reference_token_conv)
        monkeypatch.setattr(saphn_arch, 'pixel_dependent_filter', reference_pdf)
        monkeypatch.setattr(LevelMap, 'uniform_tokens', reference_uniform_tokens)
        monkeypatch.setattr(patch_hierarchy, 'scatter_to', reference_scatter)

    return swap


def _run(net, x, policy):
    """Output, the pixels each level processed, and every parameter's gradient of a loss on everything returned."""
    net.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    out, aux = net(x, policy=policy, return_aux=True, return_masks=True)
    loss = out.square().mean() + sum(o.square().mean() for o in aux['stage_outputs'])
    loss = loss + sum((rec['log_prob'] * torch.linspace(-1, 1, rec['log_prob'].numel()).view_as(rec['log_prob'])).mean()
                      for rec in aux['sampling'])
    loss.backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    return out.detach(), aux['masks'], grads


@pytest.mark.parametrize('arch', [SAPHNet, DMPHN])
@pytest.mark.parametrize('policy', ['sample', 'greedy'])
def test_adaptive_path_matches_the_reference(arch, policy, reference):
    torch.manual_seed(0)
    net = arch(**TINY).double().train()
    with torch.no_grad():  # trained-like weights: the zero-initialised branches (meta convs, output convs) open
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(2, 3, 24, 40, dtype=torch.float64)
    out, masks, grads = _run(net, x, policy)
    reference()
    ref_out, ref_masks, ref_grads = _run(net, x, policy)
    for stage, (levels, ref_levels) in enumerate(zip(masks, ref_masks)):
        for level, (m, r) in enumerate(zip(levels, ref_levels)):
            assert torch.equal(m, r), f'stage {stage + 1} level {level + 1} processed other pixels'
    torch.testing.assert_close(out, ref_out)
    assert set(grads) == set(ref_grads)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], msg=lambda m, n=name: f'{n}: {m}')


@pytest.mark.parametrize('arch', [SAPHNet, DMPHN])
def test_inference_matches_the_reference(arch, reference, monkeypatch):
    """Without gradients the sampled levels read through one buffer per level and gather in chunks of anchors (made
    tiny here, so that every conv runs several): the same pixels and outputs as the reference."""
    torch.manual_seed(0)
    net = arch(**TINY).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(2, 3, 24, 40, dtype=torch.float64)
    monkeypatch.setattr(token_ops, '_CHUNK_ELEMENTS', 64)
    with_grad = net(x)  # the training-time path: tables concatenated, no chunks
    with torch.no_grad():
        out, aux = net(x, return_aux=True, return_masks=True)
        reference()
        ref_out, ref_aux = net(x, return_aux=True, return_masks=True)
    assert all(torch.equal(m, r) for ms, rs in zip(aux['masks'], ref_aux['masks']) for m, r in zip(ms, rs))
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(out, with_grad.detach())


def test_bench_script_reports_both_paths_and_both_phases(tmp_path, capsys, monkeypatch):
    """scripts/bench_sampling.py measures uniform against adaptive in one run: inference at each size, one training
    step of each phase at each training crop, time and peak memory, and their ratios."""
    out = tmp_path / 'bench.json'
    bench = load_script('bench_sampling')
    peaks = iter(range(1, 100))  # the peak measurement (dispatch-mode, slow) is test_time's, checked there
    monkeypatch.setattr(bench, 'measure_peak_memory', lambda fn: (next(peaks), fn()))
    bench.main(['--sizes', '32x24', '16x16', '--train-sizes', '32x24', '--repeats', '1',
                                        '--kwargs', '{"num_feat": 4, "num_block": [1, 1, 1], "sampler_feat": 4}',
                                        '--json', str(out)])
    results = json.loads(out.read_text())
    assert set(results) == {'32x24', '16x16'}
    assert len(results['32x24']) == 4 and len(results['16x16']) == 2  # training steps only at the training crop
    assert all(case['seconds'] > 0 for case in results['32x24'].values())
    assert [case['peak_bytes'] for case in results['32x24'].values()] == [1, 2, 3, 4]
    text = capsys.readouterr().out
    assert '32x24 inference: adaptive / uniform time' in text and '32x24 training step: adaptive / uniform' in text
