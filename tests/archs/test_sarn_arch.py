"""SARN, SARNMulti and SARNRecurrent (paper 000): the self-attention's two forms, the identity start, bad arguments, and
SARNRecurrent's streaming (same frames as the whole-clip forward, constant memory, real recurrence). The paper's sizes
and ablation switches are checked in tests/conformance/test_sarn_paper.py."""
import gc
import math
import weakref

import pytest
import torch

import deblurzoo  # noqa: F401  (registers the archs)
from basicsr.archs import build_network
from deblurzoo.archs.sarn_arch import SARNRecurrent, SelfAttention
from data_factory import load_script
from net_util import perturbed

TINY = dict(num_feat=4, num_block=1)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='num_drm'):
        build_network(dict(type='SARN', num_drm=7))
    with pytest.raises(ValueError, match='num_frame must be odd'):
        build_network(dict(type='SARNMulti', num_frame=4))
    with pytest.raises(ValueError, match=r'\(batch, 5, 3, height, width\)'):
        build_network(dict(type='SARNMulti', **TINY))(torch.rand(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match=r'\(batch, 3, height, width\)'):
        build_network(dict(type='SARN', **TINY))(torch.rand(1, 5, 3, 8, 8))


def test_untrained_nets_return_their_input():
    """The residual (and the attention) start at zero: training starts from the blurry input."""
    x = torch.rand(2, 5, 3, 19, 22)
    with torch.no_grad():
        assert torch.equal(build_network(dict(type='SARN', **TINY)).eval()(x[:, 0]), x[:, 0])
        assert torch.equal(build_network(dict(type='SARNMulti', **TINY)).eval()(x), x[:, 2])
        assert torch.equal(build_network(dict(type='SARNRecurrent', **TINY, lstm_feat=4)).eval()(x), x)


def _attention_reference(sa, x, keys_from):
    """``x + W softmax(q k^T / sqrt(d)) v`` written out, keys and values from the map ``keys_from``."""
    b, _, h, w = x.shape
    q = sa.query(x).flatten(2)  # (b, d, hw)
    k, v = sa.key_value(keys_from).flatten(2).chunk(2, dim=1)  # (b, d, n) each
    attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(q.shape[1]), dim=-1)  # (b, hw, n)
    return x + sa.proj((v @ attn.transpose(1, 2)).reshape(b, -1, h, w))


def test_full_self_attention_is_softmax_attention_over_all_positions():
    sa = perturbed(SelfAttention(16, reduction=4, kv_size=None))
    x = torch.rand(2, 16, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(sa(x), _attention_reference(sa, x, x), rtol=1e-5, atol=1e-5)


def test_pooled_self_attention_takes_keys_and_values_from_the_pooled_map():
    sa = perturbed(SelfAttention(16, reduction=4, kv_size=4))
    x = torch.rand(2, 16, 12, 9)
    with torch.no_grad():
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, (4, 4))
        torch.testing.assert_close(sa(x), _attention_reference(sa, x, pooled), rtol=1e-5, atol=1e-5)
        small = torch.rand(2, 16, 3, 4)  # no larger than the grid: nothing to pool, full attention
        torch.testing.assert_close(sa(small), _attention_reference(sa, small, small), rtol=1e-5, atol=1e-5)
        full = perturbed(SelfAttention(16, reduction=4, kv_size=None))
        full.load_state_dict(sa.state_dict())  # the switch changes no parameter
        assert not torch.allclose(full(x), sa(x), atol=1e-4)


def test_checkpoints_with_one_qkv_conv_still_load():
    """Checkpoints saved when query, keys and values came from one 1x1 conv (``qkv``) load into the split convs."""
    sa = perturbed(SelfAttention(16, reduction=4, kv_size=None))
    old = {k: v for k, v in sa.state_dict().items() if not k.startswith(('query', 'key_value'))}
    old['qkv.weight'] = torch.cat([sa.query.weight, sa.key_value.weight])
    old['qkv.bias'] = torch.cat([sa.query.bias, sa.key_value.bias])
    loaded = SelfAttention(16, reduction=4, kv_size=None)
    loaded.load_state_dict(old)
    x = torch.rand(1, 16, 5, 6)
    with torch.no_grad():
        assert torch.equal(loaded(x), sa(x))


def _attention_macs(kv_size, side):
    """MACs of SARN's default-width attention (4n = 128 channels) on a side x side bottleneck (FlopCounterMode)."""
    sa = SelfAttention(128, kv_size=kv_size).eval()
    return load_script('model_cost').count_cost(sa, torch.rand(1, 128, side, side))['macs']


def test_attention_cost_grows_linearly_with_the_pixels():
    """Four times the pixels: pooled attention costs at most four times as much (its key/value conv runs on the fixed
    grid), full attention about sixteen times (the measure tells the two apart)."""
    pooled = _attention_macs(16, 64) / _attention_macs(16, 32)
    full = _attention_macs(None, 64) / _attention_macs(None, 32)
    assert 3.5 < pooled <= 4.0, pooled
    assert full > 12, full


def test_sa_kv_size_is_checked():
    for bad in (0, -2, 2.5, True, '16'):
        with pytest.raises(ValueError, match=f'kv_size must be a positive integer or None .*got {bad!r}'):
            build_network(dict(type='SARN', **TINY, sa_kv_size=bad))


def test_deformable_backends_agree():
    torch.manual_seed(0)
    net = perturbed(build_network(dict(type='SARN', **TINY, dcn_backend='pytorch')))
    ref = perturbed(build_network(dict(type='SARN', **TINY, dcn_backend='torchvision')))
    ref.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-4, atol=1e-5)


def _recurrent(seed=0):
    torch.manual_seed(seed)
    return perturbed(build_network(dict(type='SARNRecurrent', **TINY, lstm_feat=4)))


@pytest.mark.parametrize('t', [1, 2, 3, 6])
def test_streaming_equals_whole_clip_forward(t):
    net = _recurrent()
    clip = torch.rand(2, t, 3, 13, 18)
    with torch.no_grad():
        whole = net(clip)
        streamed = list(net.stream(iter(clip.unbind(1))))
        manual, state = [], None  # step() by hand, replicating the last frame as missing next frames
        for i in range(t):
            window = clip[:, [min(i + j, t - 1) for j in range(net.num_next + 1)]]
            out, state = net.step(window, state)
            manual.append(out)
    assert len(streamed) == t
    torch.testing.assert_close(torch.stack(streamed, 1), whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.stack(manual, 1), whole, rtol=0, atol=1e-6)


def test_streaming_memory_does_not_grow_with_length():
    """Streaming holds num_next + 1 input frames and a fixed-size state: every older frame is freed, and what the state
    holds is the same after 3 and after 16 frames."""
    net = _recurrent()
    alive, read = [], []
    state_bytes = {}

    def frames(n):
        for i in range(n):
            frame = torch.rand(1, 3, 16, 20)
            alive.append(weakref.ref(frame))
            read.append(i)
            yield frame

    step = net.step

    def recording_step(window, state):
        out, new_state = step(window, state)
        state_bytes[len(read)] = sum(t.numel() * t.element_size() for t in new_state.tensors())
        return out, new_state

    net.step = recording_step
    with torch.no_grad():
        for k, out in enumerate(net.stream(frames(16))):
            gc.collect()
            held = [i for i, ref in enumerate(alive) if ref() is not None]
            assert held and min(held) >= k, f'output {k}: input frames {held} still held'
            assert len(held) <= net.num_next + 1, f'output {k}: {len(held)} input frames held'
            assert len(read) <= min(k + net.num_next + 1, 16), f'output {k} needed {len(read)} frames read'
            assert out.grad_fn is None
            del out
    assert len(set(state_bytes.values())) == 1, f'state size changes with length: {state_bytes}'


def test_recurrence_reaches_back_and_looks_two_frames_ahead():
    net = _recurrent()
    clip = torch.rand(1, 7, 3, 12, 12)
    with torch.no_grad():
        base = net(clip)
        changed_first = clip.clone()
        changed_first[:, 0] = torch.rand(1, 3, 12, 12)
        past = net(changed_first)
        changed_ahead = clip.clone()
        changed_ahead[:, 5] = torch.rand(1, 3, 12, 12)
        ahead = net(changed_ahead)
    assert (past[:, 6] - base[:, 6]).abs().max() > 1e-6  # frame 0 still matters at frame 6 (state, past outputs)
    assert torch.equal(ahead[:, :3], base[:, :3])  # frames 0-2 see at most frame 4
    assert (ahead[:, 3] - base[:, 3]).abs().max() > 1e-6  # frame 3 sees frame 5


def test_recurrent_state_class_is_what_steps_carry():
    net = _recurrent()
    with torch.no_grad():
        _, state = net.step(torch.rand(1, 3, 3, 10, 14))
    assert isinstance(net, SARNRecurrent)
    assert state.hidden.shape == (1, 4, 3, 4)  # 10x14 padded to 12x16, at 1/4 resolution
    assert [tuple(o.shape) for o in state.outputs] == [(1, 3, 10, 14)] * net.num_prev


@pytest.mark.parametrize('lstm_bypass', [False, True])
def test_decoder_reads_the_convlstm_output_as_in_eq7(lstm_bypass):
    """Eq. 7, ``I_i = NetD(g_i)``: by default the decoder's bottleneck input is the ConvLSTM's output ``W h_i`` alone;
    ``lstm_bypass`` adds the encoder output ``f_i``."""
    torch.manual_seed(0)
    net = perturbed(build_network(dict(type='SARNRecurrent', **TINY, lstm_feat=4, lstm_bypass=lstm_bypass)))
    seen = {}
    net.body.attention.register_forward_hook(lambda m, i, o: seen.__setitem__('f', o))
    net.lstm_out.register_forward_hook(lambda m, i, o: seen.__setitem__('g', o))
    net.body.dec3.register_forward_hook(lambda m, i, o: seen.__setitem__('decoder_in', i[0]))
    with torch.no_grad():
        net(torch.rand(1, 2, 3, 12, 12))
    expected = seen['f'] + seen['g'] if lstm_bypass else seen['g']
    assert torch.equal(seen['decoder_in'], expected)


def test_bypass_starts_as_the_image_net_and_eq7_does_not():
    """With the bypass, W starts at zero (the decoder first sees f_i); in the paper's form W is initialised like every
    conv (a zero W would cut the decoder off from the encoder's bottleneck)."""
    assert torch.count_nonzero(build_network(dict(type='SARNRecurrent', **TINY, lstm_bypass=True)).lstm_out.weight) == 0
    assert torch.count_nonzero(build_network(dict(type='SARNRecurrent', **TINY)).lstm_out.weight) > 0


def test_pooled_attention_exports_to_onnx_at_any_size(tmp_path):
    """The key/value pooling keeps a dynamic-size ONNX export (adaptive pooling would bake the traced size in)."""
    pytest.importorskip('onnxruntime')
    script = load_script('export_onnx')
    net = perturbed(build_network(dict(type='SARN', **TINY, sa_kv_size=4)))
    path = str(tmp_path / 'sarn.onnx')
    info = script.export_onnx(net, path, 'SARN', 'image', (24, 32), dynamic=True)
    sizes = list(info['check_sizes']) + [(8, 8), (61, 45)]  # below the grid (not pooled) and above it
    assert len(script.check_onnx(net, path, sizes, 'SARN', dynamic=True)) == len(sizes)
