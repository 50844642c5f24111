"""SAPHNet (paper 003): adaptive against uniform cost, efficient attention against its quadratic form, step 1 on the
uniform lattice, the ablation switches of Tables IV/V, the sampling policies, and the DMPHN baseline built from the
same pieces (the paper's size and cost: tests/conformance/test_saphn_paper.py)."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from deblurzoo.archs.arch_util import count_parameters
from deblurzoo.archs.dmphn_arch import DMPHN
from deblurzoo.archs.sample_grid import LevelMap, SampleGrid
from deblurzoo.archs.saphn_arch import ContentAwareModule, EfficientAttention, SAPHNet
from deblurzoo.ops import use_backend

TINY = dict(num_feat=4, num_block=(1, 1, 1), sampler_feat=4)


def _macs(net, x, **kwargs):
    """Multiply-accumulates of one eval forward (FlopCounterMode counts 2 FLOPs per MAC); the 'pytorch' deformable
    backend is used so that the PDF's matmuls are visible to the counter."""
    with use_backend('pytorch'), torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, **kwargs)
    return counter.get_total_flops() / 2


def test_adaptive_sampling_costs_about_what_uniform_sampling_costs():
    """The default net processes as many pixels either way (the paper's size and cost are checked in
    tests/conformance/test_saphn_paper.py); adaptive sampling adds the probability heads and the skip projections."""
    net = SAPHNet().eval()
    x = torch.rand(1, 3, 64, 64)
    uniform, adaptive = _macs(net, x, policy='uniform'), _macs(net, x, policy='greedy')
    assert 1 < adaptive / uniform < 1.08, f'{uniform / 1e9:.2f} G MACs uniform, {adaptive / 1e9:.2f} G adaptive'


def test_efficient_attention_equals_its_quadratic_form():
    """out = B G^T with G = F^T A equals the explicit (n x m) attention matrix S = B A^T applied to F."""
    torch.manual_seed(0)
    attn = EfficientAttention(6, 3, masks=False).double()
    x = torch.randn(2, 20, 6, dtype=torch.float64)
    source = torch.randn(2, 15, 6, dtype=torch.float64)
    for src in (None, source):
        feat = x if src is None else src
        a = torch.softmax(attn.to_maps(feat), dim=1)  # (b, m, c')
        bw = torch.softmax(attn.to_weights(x), dim=2)  # (b, n, c')
        scores = bw @ a.transpose(1, 2)  # (b, n, m): quadratic in the pixels
        expected = scores @ feat
        torch.testing.assert_close(attn(x, src), expected)
        torch.testing.assert_close(scores.sum(2), torch.ones(2, 20, dtype=torch.float64))  # rows are distributions


def test_attention_masks_gate_per_pixel_and_per_channel():
    torch.manual_seed(0)
    attn = EfficientAttention(4, 2, masks=True)
    x = torch.randn(1, 10, 4)
    with torch.no_grad():
        attn.spatial_mask.weight.zero_()
        attn.spatial_mask.bias.fill_(-30)  # closes every pixel
    assert attn(x).abs().max() < 1e-10


def test_attention_step_one_reads_the_uniform_lattice(monkeypatch):
    """Sec. 3.2.2: "for stage 1, we utilize the uniformly sampled feature" (to "cover the whole scene"): one feature
    map F read at two different sampled pixel sets gives the same global descriptors (self- and cross-attention),
    those of F on the uniform lattice; step 2 follows the sampled pixels."""
    torch.manual_seed(0)
    c, size, spacing = 4, (8, 8), 2
    cpm = ContentAwareModule(c, True, 3, 0.5, 3.0, True, True, True, True, True)  # a decoder CPM: self + cross
    feat, enc_feat = torch.randn(2, c, *size).unbind(0)  # F (and the encoder's) at every full-resolution pixel

    def level_map(f, flat):
        every = f.flatten(1).t()  # (H * W, c)
        return LevelMap(every[flat][None], SampleGrid(flat[None], size, spacing), lambda gidx: every[gidx])

    seen = []
    for attn in (cpm.attn, cpm.cross):
        monkeypatch.setattr(attn, 'descriptors', lambda src, f=attn.descriptors: seen.append(f(src)) or seen[-1])
    outputs = []
    for seed in (1, 2):
        flat = torch.randperm(64, generator=torch.Generator().manual_seed(seed))[:16].sort().values
        with torch.no_grad():
            outputs.append(cpm(level_map(feat, flat), enc=level_map(enc_feat, flat)))
    lattice = SampleGrid.uniform(1, size, spacing, 'cpu').flat[0]
    with torch.no_grad():
        expected = [cpm.attn.descriptors(feat.flatten(1).t()[lattice][None]),
                    cpm.cross.descriptors(enc_feat.flatten(1).t()[lattice][None])]
    assert len(seen) == 6  # (self, cross) per forward, and the expected pair
    for got in (seen[:2], seen[2:4]):
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e)
    assert not torch.allclose(outputs[0], outputs[1])


def _tiny(**kwargs):
    torch.manual_seed(0)
    return SAPHNet(**{**TINY, **kwargs})


@pytest.mark.parametrize('switch', [
    dict(attention=False), dict(pdf=False), dict(pdf_offsets=False), dict(cross_attention=False),
    dict(cross_stage_attention=False), dict(masks=False), dict(stage_supervision=False), dict(sampling='uniform'),
    dict(sample_ratio=0.5), dict(sample_ratio=1.5), dict(attention=False, pdf=False, sampling='uniform')
], ids=lambda d: ','.join(f'{k}={v}' for k, v in d.items()))
def test_ablation_switches_train_and_evaluate(switch):
    net = _tiny(**switch).train()
    x = torch.rand(2, 3, 24, 40)
    out, aux = net(x, return_aux=True)
    assert out.shape == x.shape
    expected_stages = 2 if net.stage_supervision else 0
    assert len(aux['stage_outputs']) == expected_stages
    assert len(aux['sampling']) == (2 if switch.get('sampling', 'adaptive') == 'adaptive' else 0)
    loss = out.mean() + sum(o.mean() for o in aux['stage_outputs']) + sum(s['log_prob'].mean() for s in aux['sampling'])
    loss.backward()
    net.eval()
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_switches_remove_their_parameters():
    full = count_parameters(_tiny())
    for switch in ('attention', 'pdf_offsets', 'cross_attention', 'cross_stage_attention', 'masks'):
        assert count_parameters(_tiny(**{switch: False})) < full, switch
    assert count_parameters(_tiny(sampling='uniform')) < full  # no probability heads, no skip projections


def test_sample_ratio_scales_the_sampled_pixels():
    x = torch.rand(1, 3, 32, 32)
    counts = {}
    for ratio in (0.5, 1.0, 1.5):
        net = _tiny(sample_ratio=ratio).eval()
        with torch.no_grad():
            masks = net(x, return_aux=True, return_masks=True)[1]['masks']
        counts[ratio] = [m.sum().item() for m in masks[1]]  # stage 2, levels 1 and 2
    # 2 patches of 16x32: level 1 has 2 * 8 * 16 = 256 pixels uniformly, level 2 has 2 * 4 * 8 = 64
    assert counts[1.0] == [256, 64]
    assert counts[0.5] == [128, 32] and counts[1.5] == [384, 96]


def test_uniform_policy_samples_the_lattice_and_greedy_follows_the_probability():
    net = _tiny().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        uniform = net(x, policy='uniform', return_aux=True, return_masks=True)[1]['masks']
        adaptive = net(x, return_aux=True, return_masks=True)[1]['masks']
    lattice = torch.zeros(32, 32)
    lattice[::2, ::2] = 1
    for stage in range(3):
        assert torch.equal(uniform[stage][0][0, 0], lattice)
    assert torch.equal(adaptive[0][0][0, 0], lattice), 'stage 1 always samples uniformly'
    assert not torch.equal(adaptive[2][0][0, 0], lattice)


@pytest.mark.parametrize('arch', [SAPHNet, DMPHN])
def test_forward_returns_the_image_in_every_mode_and_aux_on_request(arch):
    torch.manual_seed(0)
    net = arch(**TINY)
    x = torch.rand(1, 3, 16, 16)
    for mode in (True, False):
        net.train(mode)
        assert torch.is_tensor(net(x))
        out, aux = net(x, return_aux=True)
        assert torch.is_tensor(out) and set(aux) == {'stage_outputs', 'sampling', 'stage1'}
    with pytest.raises(ValueError, match='return_aux'):
        net(x, return_masks=True)
    with pytest.raises(ValueError, match='num_out_ch'):
        arch(**TINY, num_out_ch=1)


def test_policy_errors():
    with pytest.raises(ValueError, match='adaptive'):
        _tiny(sampling='uniform')(torch.rand(1, 3, 16, 16), policy='sample')
    with pytest.raises(ValueError, match='policy'):
        _tiny()(torch.rand(1, 3, 16, 16), policy='random')
    with pytest.raises(ValueError, match='sampling'):
        _tiny(sampling='dense')


def test_stages_start_as_identity():
    """Each stage's last conv starts at zero: an untrained net returns its input (residual learning)."""
    net = _tiny().eval()
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        torch.testing.assert_close(net(x), x)


def test_dmphn_baseline_uniform_and_adaptive():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    uniform = DMPHN(**TINY, sampling='uniform')
    adaptive = DMPHN(**TINY)
    assert uniform.samplers is None and len(adaptive.samplers) == 2
    uniform.eval()
    adaptive.eval()
    macs_u, macs_a = _macs(uniform, x), _macs(adaptive, x)
    assert macs_a / macs_u < 1.6, (macs_u, macs_a)  # tiny widths: the probability heads weigh relatively more
    adaptive.train()
    out, aux = adaptive(x, return_aux=True)
    assert len(aux['sampling']) == 2 and aux['stage_outputs'] == []


@pytest.mark.parametrize('arch', [SAPHNet, DMPHN])
def test_greedy_pass_reuses_stage_one_of_the_sampled_pass(arch, monkeypatch):
    """Stage 1 samples uniformly whatever the policy: the joint phase's greedy baseline takes the sampled pass's stage 1
    (``aux['stage1']``) instead of running it again, with the same result as a full greedy pass."""
    torch.manual_seed(0)
    net = arch(**TINY).train()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(1, 3, 16, 24)
    _, aux = net(x, policy='sample', return_aux=True)
    with torch.no_grad():
        full = net(x, policy='greedy', return_aux=True)
        calls = []
        monkeypatch.setattr(net.stages[0], 'encode', lambda *a, **k: calls.append(1))
        reused = net(x, policy='greedy', return_aux=True, stage1=aux['stage1'])
    assert not calls, 'stage 1 ran again'
    torch.testing.assert_close(reused[0], full[0])
    for a, b in zip(reused[1]['stage_outputs'], full[1]['stage_outputs']):
        torch.testing.assert_close(a, b)
