"""Tests for deblurzoo.ops.deform_conv: the pure-PyTorch backend against torchvision (outputs and all gradients),
backend selection, argument validation and BasicSR state-dict compatibility."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch.nn.modules.utils import _pair

import deblurzoo  # noqa: F401  (patches BasicSR so that it imports)
from deblurzoo import ops
from deblurzoo.ops import deform_conv as dc
from deblurzoo.ops.deform_backends import pytorch as pt
from deblurzoo.ops.deform_backends import reference

DTYPE = torch.float64
RTOL, ATOL = 1e-5, 1e-8


@pytest.fixture(autouse=True)
def _reset_backend(monkeypatch):
    monkeypatch.delenv(dc.ENV_VAR, raising=False)
    ops.set_backend(None)
    yield
    ops.set_backend(None)


@pytest.fixture
def calls(monkeypatch):
    """Record which backend implementation each call reaches."""
    seen = []
    for name, impl in list(dc._IMPLEMENTATIONS.items()):

        def spy(*args, _name=name, _impl=impl):
            seen.append(_name)
            return _impl(*args)

        monkeypatch.setitem(dc._IMPLEMENTATIONS, name, spy)
    return seen


def _out_size(h, w, k, stride, padding, dilation):
    kh, kw = k
    return ((h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1,
            (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1)


def _make_offset(kind, gen, b, g, k, h, w, out, stride, padding, dilation):
    """Offsets (b, 2 * g * kh * kw, h_out, w_out) of one kind; 'border' puts samples exactly on and around the edges."""
    kh, kw = k
    shape = (b, g, kh * kw, 2, *out)
    if kind == 'zero':
        return torch.zeros(b, 2 * g * kh * kw, *out, dtype=DTYPE)
    if kind == 'frac':
        off = torch.randn(shape, generator=gen, dtype=DTYPE) * 1.5
    elif kind == 'int':
        off = torch.randint(-3, 4, shape, generator=gen).to(DTYPE)
    elif kind == 'outside':
        off = torch.randint(-(h + w + 4), h + w + 5, shape, generator=gen).to(DTYPE)
        off = off + torch.rand(shape, generator=gen, dtype=DTYPE).round() * 0.5  # some half-integers
    elif kind == 'border':
        # target positions exactly at -1, 0, size - 1, size and their neighbours, then offset = target - base
        ty = torch.tensor([-2, -1.5, -1, -0.5, 0, h - 1, h - 0.5, h, h + 0.5], dtype=DTYPE)
        tx = torch.tensor([-2, -1.5, -1, -0.5, 0, w - 1, w - 0.5, w, w + 0.5], dtype=DTYPE)
        sel = torch.randint(0, len(ty), (2, *shape[:3], *out), generator=gen)
        i = torch.arange(kh, dtype=DTYPE).repeat_interleave(kw).view(1, 1, -1, 1, 1)
        j = torch.arange(kw, dtype=DTYPE).repeat(kh).view(1, 1, -1, 1, 1)
        base_y = torch.arange(out[0], dtype=DTYPE).view(-1, 1) * stride[0] - padding[0] + i * dilation[0]
        base_x = torch.arange(out[1], dtype=DTYPE).view(1, -1) * stride[1] - padding[1] + j * dilation[1]
        off = torch.stack((ty[sel[0]] - base_y, tx[sel[1]] - base_x), dim=3)
    else:
        raise ValueError(kind)
    return off.reshape(b, 2 * g * kh * kw, *out)


def _make_case(b=2,
               c_in=4,
               c_out=6,
               size=(7, 9),
               k=(3, 3),
               stride=1,
               padding=1,
               dilation=1,
               groups=1,
               offset_groups=1,
               offset='frac',
               mask=True,
               bias=True,
               seed=0):
    stride, padding, dilation = (_pair(v) for v in (stride, padding, dilation))
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    out = _out_size(h, w, k, stride, padding, dilation)
    kh, kw = k
    case = dict(
        input=torch.randn(b, c_in, h, w, generator=gen, dtype=DTYPE),
        offset=_make_offset(offset, gen, b, offset_groups, k, h, w, out, stride, padding, dilation),
        weight=torch.randn(c_out, c_in // groups, kh, kw, generator=gen, dtype=DTYPE),
        bias=torch.randn(c_out, generator=gen, dtype=DTYPE) if bias else None,
        mask=torch.rand(b, offset_groups * kh * kw, *out, generator=gen, dtype=DTYPE) if mask else None,
    )
    return case, dict(stride=stride, padding=padding, dilation=dilation)


def _run(backend, case, params, seed=1, requires_grad=None):
    """Forward + backward with one backend; returns the output and the gradient of every tensor argument (of those
    named in ``requires_grad``, default all)."""
    leaves = {
        k: v.clone().requires_grad_(requires_grad is None or k in requires_grad)
        for k, v in case.items() if v is not None
    }
    with ops.use_backend(backend):
        out = ops.deform_conv2d(
            leaves['input'], leaves['offset'], leaves['weight'], leaves.get('bias'), mask=leaves.get('mask'), **params)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    if out.requires_grad:
        out.backward(grad_out)
    return out.detach(), {k: v.grad for k, v in leaves.items() if v.requires_grad}


def _rel_err(a, b):
    """Norm-wise relative error ||a - b|| / ||b|| (||a|| when b is 0)."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item() if b.norm() > 0 else a.norm().item()


def _assert_matches(out, grads, out_ref, grads_ref, rel=1e-5, elementwise=True, rtol=RTOL, atol=ATOL):
    """Output and every gradient within ``rel`` norm-wise relative error (and elementwise close, if asked)."""
    assert set(grads) == set(grads_ref)
    for name, a, b in [('out', out, out_ref)] + [(k, grads[k], grads_ref[k]) for k in grads_ref]:
        assert a.shape == b.shape, name
        assert _rel_err(a, b) <= rel, f'{name}: norm-wise relative error {_rel_err(a, b):.2e}'
        if elementwise:
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f'{name}: {m}')


CASES = {
    'frac': dict(),
    'zero_offsets': dict(offset='zero'),
    'int_offsets': dict(offset='int'),
    'outside': dict(offset='outside'),
    'border_exact': dict(offset='border'),
    'border_exact_pad0_stride2': dict(offset='border', padding=0, stride=2),
    'offset_groups2': dict(offset_groups=2),
    'offset_groups4_int': dict(offset_groups=4, offset='int'),
    'offset_groups8': dict(c_in=16, c_out=8, offset_groups=8),
    'offset_groups8_border': dict(b=1, c_in=8, offset_groups=8, offset='border'),
    'stride2': dict(stride=2),
    'dilation2': dict(dilation=2, padding=2, offset='int'),
    'dilation2_frac': dict(dilation=2, padding=2),
    'padding0': dict(padding=0),
    'weight_groups2': dict(groups=2, offset_groups=2),
    'weight_groups2_og1': dict(groups=2, offset_groups=1, offset='outside'),
    'weight_groups2_og4': dict(groups=2, c_in=8, offset_groups=4, offset='border'),
    'weight_groups4_og2': dict(groups=4, c_in=8, c_out=8, offset_groups=2),
    'no_mask': dict(mask=False),
    'no_mask_int': dict(mask=False, offset='int'),
    'no_bias': dict(bias=False),
    'no_mask_no_bias_og8': dict(c_in=8, offset_groups=8, mask=False, bias=False, offset='outside'),
    'kernel3x5': dict(k=(3, 5), padding=(1, 2), offset='border'),
    'kernel1x1': dict(k=(1, 1), padding=0),
    'asymmetric_params': dict(k=(2, 3), stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
    'batch1_square': dict(b=1, size=(6, 6)),
    'batch3_odd': dict(b=3, size=(5, 11), offset='outside', mask=False, bias=False),
}


@pytest.mark.parametrize('config', list(CASES.values()), ids=list(CASES))
def test_pytorch_matches_torchvision(config):
    """Output and all five gradients of the 'pytorch' backend equal torchvision's (float64; elementwise and
    norm-wise)."""
    case, params = _make_case(**config)
    assert pt.use_fast_path(*(case[k] for k in ('input', 'offset', 'weight', 'bias', 'mask')))
    out_tv, grads_tv = _run('torchvision', case, params)
    out_pt, grads_pt = _run('pytorch', case, params)
    assert set(grads_pt) == {k for k, v in case.items() if v is not None}
    _assert_matches(out_pt, grads_pt, out_tv, grads_tv)


@pytest.mark.parametrize('config', ['frac', 'border_exact', 'weight_groups2_og4', 'no_mask_no_bias_og8'])
def test_reference_path_matches_torchvision(monkeypatch, config):
    """The plain-op path (what tracing and ONNX export run) is exact as well."""
    monkeypatch.setattr(pt, 'use_fast_path', lambda *tensors: False)
    case, params = _make_case(**CASES[config])
    _assert_matches(*_run('pytorch', case, params), *_run('torchvision', case, params))


@pytest.mark.parametrize('wanted', [('input', ), ('offset', ), ('mask', ), ('weight', ), ('bias', ),
                                    ('offset', 'mask'), ('input', 'weight')])
def test_only_the_requested_gradients(wanted):
    case, params = _make_case(offset_groups=2, offset='border')
    out_pt, grads_pt = _run('pytorch', case, params, requires_grad=wanted)
    out_tv, grads_tv = _run('torchvision', case, params, requires_grad=wanted)
    assert set(grads_pt) == set(wanted)
    _assert_matches(out_pt, grads_pt, out_tv, grads_tv)


# work splits of the fast path, as (_BLOCK_ELEMENTS, _CHUNK_ELEMENTS), for the case of test_float32_work_splits: 3
# images of 6 output rows, each row 10 * 9 * 16 column entries
ROW = 10 * 9 * 16
SPLITS = {
    'default': None,  # one block and chunk
    'rows': (2 * ROW, ROW),  # blocks of 2 rows, chunks of 1
    'one_row': (1, 1),
    'images_per_block': (2 * 6 * ROW, 6 * ROW),  # blocks of 2 images, chunks of 1
    'images_per_chunk': (3 * 6 * ROW, 2 * 6 * ROW),
    'images_per_block_rows_per_chunk': (2 * 6 * ROW, 4 * ROW),
}


@pytest.mark.parametrize('split_name, offset_groups', [('default', 1), ('default', 8), ('rows', 1), ('rows', 8),
                                                       ('one_row', 1), ('images_per_block', 8),
                                                       ('images_per_chunk', 1), ('images_per_block_rows_per_chunk', 8)])
def test_float32_work_splits(monkeypatch, split_name, offset_groups):
    """float32, several images, blocks and chunks: all gradients within 1e-5 norm-wise relative error of
    torchvision's (the elementwise tolerance of float32 sums is looser)."""
    split = SPLITS[split_name]
    if split is not None:
        monkeypatch.setattr(pt, '_BLOCK_ELEMENTS', split[0])
        monkeypatch.setattr(pt, '_CHUNK_ELEMENTS', split[1])
    case, params = _make_case(b=3, c_in=16, c_out=8, size=(6, 10), offset_groups=offset_groups, offset='outside')
    case = {k: v.float() for k, v in case.items()}
    case['offset'] = case['offset'] * 0.1 + torch.randn_like(case['offset'])  # mostly inside, some outside
    _assert_matches(*_run('pytorch', case, params), *_run('torchvision', case, params), rtol=1e-4, atol=1e-4)


def test_border_offset_gradient_convention():
    """A sample exactly at y = -1 reads 0 but still has torchvision's (right-sided) y-gradient: the row-0 value."""
    x = torch.arange(1., 10., dtype=DTYPE).view(1, 1, 3, 3)
    weight = torch.ones(1, 1, 1, 1, dtype=DTYPE)
    for backend in ('torchvision', 'pytorch'):
        offset = torch.zeros(1, 2, 3, 3, dtype=DTYPE)
        offset[0, :, 0, 0] = torch.tensor([-1., 0.5])  # output (0, 0) samples (y, x) = (-1, 0.5)
        offset.requires_grad_()
        with ops.use_backend(backend):
            out = ops.deform_conv2d(x, offset, weight)
        out[0, 0, 0, 0].backward()
        assert out[0, 0, 0, 0].item() == 0
        assert offset.grad[0, :, 0, 0].tolist() == [1.5, 0.0], backend


@pytest.mark.parametrize('groups', [1, 2])
def test_zero_offsets_unit_mask_is_plain_conv(groups):
    case, params = _make_case(offset='zero', groups=groups, offset_groups=2, stride=2, padding=1)
    case['mask'] = torch.ones_like(case['mask'])
    expected = F.conv2d(case['input'], case['weight'], case['bias'], groups=groups, **params)
    for backend in ('torchvision', 'pytorch'):
        with ops.use_backend(backend):
            out = ops.deform_conv2d(**case, **params)
        torch.testing.assert_close(out, expected, rtol=RTOL, atol=ATOL)


GRADCHECK_CASES = {
    # 2 channels, 2 offset groups, 2x2 kernel, padding 1: output 3x4, with mask and bias
    'og2_k2': dict(c_in=2, c_out=2, groups=1, og=2, k=(2, 2), size=(2, 3), stride=1, padding=1, dilation=1, mask=True,
                   bias=True),
    # weight groups, stride 2, dilation 2, no mask, no bias, batch 2: output 2x3
    'groups2_stride2_dilation2': dict(c_in=2, c_out=2, groups=2, og=1, k=(3, 3), size=(4, 5), stride=2, padding=2,
                                      dilation=2, mask=False, bias=False, b=2),
}


@pytest.mark.parametrize('cfg', list(GRADCHECK_CASES.values()), ids=list(GRADCHECK_CASES))
def test_gradcheck_pytorch_backend(cfg):
    """Gradients of the hand-written backward against finite differences (float64). The fractional parts of the
    offsets are kept in [0.2, 0.8] so that finite differences never cross an integer; some samples fall outside."""
    gen = torch.Generator().manual_seed(3)
    b, (kh, kw), (h, w) = cfg.get('b', 1), cfg['k'], cfg['size']
    h_out, w_out = _out_size(h, w, cfg['k'], _pair(cfg['stride']), _pair(cfg['padding']), _pair(cfg['dilation']))
    og, k = cfg['og'], kh * kw
    x = torch.randn(b, cfg['c_in'], h, w, generator=gen, dtype=DTYPE, requires_grad=True)
    offset = (torch.randint(-2, 3, (b, 2 * og * k, h_out, w_out), generator=gen) + 0.2 +
              0.6 * torch.rand(b, 2 * og * k, h_out, w_out, generator=gen, dtype=DTYPE)).requires_grad_()
    weight = torch.randn(cfg['c_out'], cfg['c_in'] // cfg['groups'], kh, kw, generator=gen, dtype=DTYPE,
                         requires_grad=True)
    bias = torch.randn(cfg['c_out'], generator=gen, dtype=DTYPE, requires_grad=True) if cfg['bias'] else None
    mask = torch.rand(b, og * k, h_out, w_out, generator=gen, dtype=DTYPE,
                      requires_grad=True) if cfg['mask'] else None
    inputs = [t for t in (x, offset, weight, bias, mask) if t is not None]

    def fn(*args):
        args = list(args)
        x, offset, weight = args[:3]
        bias = args.pop(3) if cfg['bias'] else None
        mask = args[3] if cfg['mask'] else None
        return dc._dispatch(x, offset, weight, bias, cfg['stride'], cfg['padding'], cfg['dilation'], mask,
                            backend='pytorch')

    assert pt.use_fast_path(x, offset, weight, bias, mask)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_reference_path_batch_chunks(monkeypatch):
    monkeypatch.setattr(pt, 'use_fast_path', lambda *tensors: False)
    monkeypatch.setattr(reference, '_MAX_COLUMN_ELEMENTS', 1)  # one image per chunk
    case, params = _make_case(b=3, c_in=8, c_out=8, offset_groups=2)
    _assert_matches(*_run('pytorch', case, params), *_run('torchvision', case, params))


@pytest.mark.parametrize('fast', [True, False], ids=['fast', 'reference'])
def test_nan_and_inf_offsets_read_zero(monkeypatch, fast):
    """A tap at a NaN or infinite position reads 0 (torchvision's kernels do not define it) and, on the fast path,
    passes no gradient (the plain-op path, for tracing and export, may give NaN gradients there)."""
    if not fast:
        monkeypatch.setattr(pt, 'use_fast_path', lambda *tensors: False)
    case, params = _make_case(b=1, offset_groups=2)
    bad = torch.zeros_like(case['mask'], dtype=torch.bool)  # (b, og * k, h_out, w_out): the taps made non-finite
    bad[0, 3, 2, 4] = bad[0, 10, 0, 0] = bad[0, 17, 6, 8] = bad[0, 5, 1, 1] = True
    offset = case['offset'].clone().view(1, 2 * 9, 2, 7, 9)
    offset[:, :, 0][bad] = float('nan')  # y
    offset[:, :, 1][bad.roll(1, dims=2)] = float('inf')  # x of other taps
    offset[0, 5, 0, 1, 1] = -float('inf')
    bad = bad | bad.roll(1, dims=2)
    case['offset'] = offset.view_as(case['offset'])
    out, grads = _run('pytorch', case, params)
    # the same as those taps masked out (with finite offsets)
    zeroed = dict(case, offset=case['offset'].nan_to_num(0., 0., 0.), mask=case['mask'].masked_fill(bad, 0))
    expected = torchvision.ops.deform_conv2d(**zeroed, **params)
    torch.testing.assert_close(out, expected, rtol=RTOL, atol=ATOL)
    if not fast:
        return
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
    assert not grads['mask'][bad].any()
    assert not grads['offset'].view(1, 18, 2, 7, 9).permute(0, 2, 1, 3, 4)[:, :, bad[0]].any()


def test_double_backward_raises():
    case, params = _make_case(b=1, size=(5, 5))
    x = case['input'].requires_grad_()
    with ops.use_backend('pytorch'):
        out = ops.deform_conv2d(**case, **params)
    grad_x, = torch.autograd.grad(out.square().sum(), x, create_graph=True)  # first order with create_graph: fine
    expected, = torch.autograd.grad(torchvision.ops.deform_conv2d(**case, **params).square().sum(), x)
    torch.testing.assert_close(grad_x, expected, rtol=RTOL, atol=ATOL)
    with pytest.raises(RuntimeError, match='double backward'):
        grad_x.sum().backward()


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning', 'ignore::FutureWarning')
def test_tracing_uses_plain_ops():
    """Under torch.jit.trace (and ONNX export) the 'pytorch' backend runs as plain differentiable ops."""
    case, params = _make_case(b=1, size=(5, 6))
    module = ops.ModulatedDeformConv(4, 6, 3, padding=1, backend='pytorch').double()
    with torch.no_grad():
        module.weight.copy_(case['weight'])
        module.bias.copy_(case['bias'])
    args = (case['input'], case['offset'], case['mask'])
    traced = torch.jit.trace(module, args, check_trace=False)
    assert 'PythonOp' not in str(traced.graph)
    torch.testing.assert_close(traced(*args), module(*args), rtol=RTOL, atol=ATOL)


def test_empty_batch():
    case, params = _make_case(b=0)
    out, grads = _run('pytorch', case, params)
    out_tv, grads_tv = _run('torchvision', case, params)
    assert out.shape == out_tv.shape == (0, 6, 7, 9)
    assert {k: g.shape for k, g in grads.items()} == {k: g.shape for k, g in grads_tv.items()}
    assert not grads['weight'].any() and not grads['bias'].any()


def test_channels_last_and_non_contiguous_arguments():
    case, params = _make_case(offset_groups=2, offset='border')
    expected = _run('torchvision', case, params)
    case['input'] = case['input'].contiguous(memory_format=torch.channels_last)
    case['offset'] = torch.stack((case['offset'], torch.zeros_like(case['offset'])), dim=-1)[..., 0]  # strided
    case['mask'] = case['mask'].transpose(0, 1).contiguous().transpose(0, 1)
    case['weight'] = case['weight'].transpose(2, 3).contiguous().transpose(2, 3)
    assert not case['offset'].is_contiguous() and not case['mask'].is_contiguous()
    _assert_matches(*_run('pytorch', case, params), *expected)


# ---------------------------------------------------------------------------------------------------------------------
# backend selection
# ---------------------------------------------------------------------------------------------------------------------


def _tiny_call():
    case, params = _make_case(b=1, c_in=2, c_out=2, size=(4, 4))
    return ops.deform_conv2d(**case, **params)


def test_default_is_auto_fastest_exact_per_device(calls):
    assert ops.get_backend() == 'auto'
    assert ops.get_backend(resolve=True) == 'pytorch'  # CPU: the exact gather beats torchvision's CPU kernel
    assert ops.get_backend(resolve=True, device='cpu') == 'pytorch'
    assert ops.get_backend(resolve=True, device='cuda') == 'torchvision'
    _tiny_call()
    assert calls == ['pytorch']


def test_available_backends():
    names = ops.available_backends()
    assert names[:2] == ('torchvision', 'pytorch')
    assert set(names) <= {'torchvision', 'pytorch', 'mmcv'}


@pytest.mark.parametrize('name', ['pytorch', 'torchvision', 'auto', 'PyTorch'])
def test_env_var(monkeypatch, calls, name):
    monkeypatch.setenv(dc.ENV_VAR, name)
    assert ops.get_backend() == name.lower()
    _tiny_call()
    assert calls == [ops.get_backend(resolve=True)]


def test_set_backend_and_use_backend(monkeypatch, calls):
    monkeypatch.setenv(dc.ENV_VAR, 'torchvision')
    ops.set_backend('pytorch')  # explicit choice beats the environment variable
    assert ops.get_backend() == 'pytorch'
    with ops.use_backend('torchvision'):
        assert ops.get_backend() == 'torchvision'
        _tiny_call()
        with ops.use_backend('pytorch'):
            _tiny_call()
        _tiny_call()
    assert ops.get_backend() == 'pytorch'
    _tiny_call()
    ops.set_backend(None)  # back to the environment variable
    assert ops.get_backend() == 'torchvision'
    assert calls == ['torchvision', 'pytorch', 'torchvision', 'pytorch']


def test_use_backend_restores_on_error():
    ops.set_backend('torchvision')
    with pytest.raises(RuntimeError):
        with ops.use_backend('pytorch'):
            raise RuntimeError
    assert ops.get_backend() == 'torchvision'


def test_module_backend_argument(calls):
    case, _ = _make_case(b=1, c_in=4, c_out=4, offset_groups=2, size=(5, 5))
    ops.set_backend('torchvision')
    pinned = ops.ModulatedDeformConv(4, 4, 3, padding=1, deformable_groups=2, backend='pytorch')
    following = ops.ModulatedDeformConv(4, 4, 3, padding=1, deformable_groups=2)
    following.load_state_dict(pinned.state_dict())
    pinned = pinned.double()
    following = following.double()
    out_pinned = pinned(case['input'], case['offset'], case['mask'])
    out_following = following(case['input'], case['offset'], case['mask'])
    assert calls == ['pytorch', 'torchvision']
    torch.testing.assert_close(out_pinned, out_following, rtol=RTOL, atol=ATOL)
    assert "backend='pytorch'" in repr(pinned)


@pytest.mark.parametrize('setter', ['set_backend', 'use_backend', 'module', 'env'])
def test_unknown_backend(monkeypatch, setter):
    with pytest.raises(ValueError, match=r"'cudnn'.*torchvision, pytorch, mmcv, auto"):
        if setter == 'set_backend':
            ops.set_backend('cudnn')
        elif setter == 'use_backend':
            with ops.use_backend('cudnn'):
                pass
        elif setter == 'module':
            ops.ModulatedDeformConv(2, 2, 3, backend='cudnn')
        else:
            monkeypatch.setenv(dc.ENV_VAR, 'cudnn')
            _tiny_call()


@pytest.mark.parametrize('setter', ['set_backend', 'module', 'env'])
def test_mmcv_unavailable(monkeypatch, setter):
    if 'mmcv' in ops.available_backends():
        pytest.skip('mmcv with compiled ops is installed')
    with pytest.raises(ImportError, match='mmcv'):
        if setter == 'set_backend':
            ops.set_backend('mmcv')
        elif setter == 'module':
            ops.ModulatedDeformConv(2, 2, 3, backend='mmcv')
        else:
            monkeypatch.setenv(dc.ENV_VAR, 'mmcv')
            _tiny_call()


def test_mmcv_matches_torchvision():
    if 'mmcv' not in ops.available_backends():
        pytest.skip('mmcv with compiled ops is not installed')
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    case, params = _make_case(mask=False, offset_groups=2)
    case = {k: None if v is None else v.float().to(device) for k, v in case.items()}
    expected = torchvision.ops.deform_conv2d(**case, **params)
    with ops.use_backend('mmcv'):
        out = ops.deform_conv2d(**case, **params)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# argument validation
# ---------------------------------------------------------------------------------------------------------------------

BAD_ARGS = {
    'input_3d': (dict(input=torch.zeros(4, 7, 9)), 'input must be a 4-D tensor'),
    'offset_channels': (dict(offset=torch.zeros(2, 17, 7, 9)), r'offset channels \(17\).*2 \* kh \* kw = 18'),
    'offset_groups_vs_channels': (dict(offset=torch.zeros(2, 54, 7, 9),
                                       mask=None), r'divisible by the offset groups \(3'),
    'offset_batch': (dict(offset=torch.zeros(1, 18, 7, 9)), 'offset batch size'),
    'offset_spatial': (dict(offset=torch.zeros(2, 18, 5, 7)), r'offset spatial size \(5, 7\).*\(7, 9\)'),
    'mask_channels': (dict(mask=torch.zeros(2, 18, 7, 9)), r'mask must have shape \(2, 9, 7, 9\)'),
    'mask_spatial': (dict(mask=torch.zeros(2, 9, 6, 9)), r'mask must have shape'),
    'input_vs_weight': (dict(weight=torch.zeros(6, 3, 3, 3)), r'input channels \(4\).*weight.shape\[1\] \(3\)'),
    'out_vs_groups': (dict(weight=torch.zeros(5, 2, 3, 3), bias=None), r'output channels \(5\).*weight groups \(2'),
    'bias_shape': (dict(bias=torch.zeros(5)), r'bias must have shape \(6,\)'),
    'stride_zero': (dict(stride=0), 'stride must be >= 1'),
    'padding_negative': (dict(padding=-1), 'padding must be >= 0'),
    'empty_output': (dict(input=torch.zeros(2, 4, 1, 1), padding=0), 'output would be empty'),
}


@pytest.mark.parametrize('backend', ['torchvision', 'pytorch'])
@pytest.mark.parametrize('bad', list(BAD_ARGS.values()), ids=list(BAD_ARGS))
def test_bad_arguments(backend, bad):
    changes, message = bad
    case, params = _make_case()
    args = {**{k: None if v is None else v.float() for k, v in case.items()}, **params}
    args.update(changes)
    with ops.use_backend(backend), pytest.raises(ValueError, match=message):
        ops.deform_conv2d(**args)


def test_module_bad_groups():
    with pytest.raises(ValueError, match='groups'):
        ops.ModulatedDeformConv(6, 4, 3, groups=4)
    with pytest.raises(ValueError, match='deformable_groups'):
        ops.ModulatedDeformConv(6, 6, 3, deformable_groups=4)


# ---------------------------------------------------------------------------------------------------------------------
# modules and BasicSR compatibility
# ---------------------------------------------------------------------------------------------------------------------


def test_module_parameters_and_init():
    m = ops.ModulatedDeformConvPack(8, 6, (3, 5), padding=(1, 2), groups=2, deformable_groups=4)
    assert m.weight.shape == (6, 4, 3, 5) and m.bias.shape == (6, )
    assert m.conv_offset.weight.shape == (4 * 3 * 15, 8, 3, 5)
    bound = 1 / (8 * 15)**0.5
    assert m.weight.abs().max() <= bound and m.weight.abs().max() > bound / 2
    assert not m.bias.any() and not m.conv_offset.weight.any() and not m.conv_offset.bias.any()
    assert ops.ModulatedDeformConv(4, 4, 3, bias=False).bias is None


@pytest.mark.parametrize('backend', ['torchvision', 'pytorch'])
def test_pack_at_init_is_half_a_plain_conv(backend):
    # zero offsets and sigmoid(0) = 0.5 everywhere
    m = ops.ModulatedDeformConvPack(4, 6, 3, stride=2, padding=1, deformable_groups=2, backend=backend).double()
    with torch.no_grad():
        m.bias.normal_()
    x = torch.randn(2, 4, 7, 9, dtype=DTYPE)
    torch.testing.assert_close(m(x), F.conv2d(x, 0.5 * m.weight, m.bias, stride=2, padding=1), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('backend', ['torchvision', 'pytorch'])
def test_dcnv2pack_matches_basicsr(backend):
    from basicsr.archs.arch_util import DCNv2Pack as BasicSRDCNv2Pack
    from basicsr.archs.arch_util import ModulatedDeformConvPack as BasicSRPack

    torch.manual_seed(0)
    theirs = BasicSRDCNv2Pack(8, 8, 3, padding=1, deformable_groups=2).double()
    with torch.no_grad():  # non-trivial offsets and mask
        theirs.conv_offset.weight.normal_(0, 0.2)
        theirs.conv_offset.bias.normal_(0, 0.5)
        theirs.bias.normal_()
    ours = ops.DCNv2Pack(8, 8, 3, padding=1, deformable_groups=2, backend=backend).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)

    x = torch.randn(2, 8, 6, 7, dtype=DTYPE)
    feat = torch.randn(2, 8, 6, 7, dtype=DTYPE)
    torch.testing.assert_close(ours(x, feat), theirs(x, feat), rtol=RTOL, atol=ATOL)
    # BasicSR's ModulatedDeformConvPack has the same parameters as ours
    theirs_pack = BasicSRPack(8, 8, 3, padding=1, deformable_groups=2)
    ours_pack = ops.ModulatedDeformConvPack(8, 8, 3, padding=1, deformable_groups=2)
    ours_pack.load_state_dict(theirs_pack.state_dict(), strict=True)


def test_dcnv2pack_uses_feat_for_offsets():
    m = ops.DCNv2Pack(4, 4, 3, padding=1).double()
    with torch.no_grad():
        m.conv_offset.weight.normal_(0, 0.3)
    x = torch.randn(1, 4, 5, 5, dtype=DTYPE)
    feat = torch.randn(1, 4, 5, 5, dtype=DTYPE)
    out = m.conv_offset(feat)
    o1, o2, mask = out.chunk(3, dim=1)
    expected = torchvision.ops.deform_conv2d(x, torch.cat((o1, o2), 1), m.weight, m.bias, 1, 1, 1, torch.sigmoid(mask))
    torch.testing.assert_close(m(x, feat), expected, rtol=RTOL, atol=ATOL)
    assert not torch.allclose(m(x, feat), m(x, x))
