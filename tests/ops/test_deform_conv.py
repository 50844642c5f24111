"""Tests for deblurzoo.ops.deform_conv: the pure-PyTorch backend against torchvision (outputs and all gradients),
backend selection, argument validation and BasicSR state-dict compatibility."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

import deblurzoo  # noqa: F401  (patches BasicSR so that it imports)
from deblurzoo import ops
from deblurzoo.ops import deform_conv as dc

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
    stride, padding, dilation = (torch.nn.modules.utils._pair(v) for v in (stride, padding, dilation))
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


def _run(backend, case, params, seed=1):
    """Forward + backward with one backend; returns the output and the gradient of every tensor argument."""
    leaves = {k: v.clone().requires_grad_() for k, v in case.items() if v is not None}
    with ops.use_backend(backend):
        out = ops.deform_conv2d(
            leaves['input'], leaves['offset'], leaves['weight'], leaves.get('bias'), mask=leaves.get('mask'), **params)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    out.backward(grad_out)
    return out.detach(), {k: v.grad for k, v in leaves.items()}


CASES = {
    'frac': dict(),
    'zero_offsets': dict(offset='zero'),
    'int_offsets': dict(offset='int'),
    'outside': dict(offset='outside'),
    'border_exact': dict(offset='border'),
    'border_exact_pad0_stride2': dict(offset='border', padding=0, stride=2),
    'offset_groups2': dict(offset_groups=2),
    'offset_groups4_int': dict(offset_groups=4, offset='int'),
    'stride2': dict(stride=2),
    'dilation2': dict(dilation=2, padding=2, offset='int'),
    'padding0': dict(padding=0),
    'weight_groups2': dict(groups=2, offset_groups=2),
    'weight_groups2_og4': dict(groups=2, c_in=8, offset_groups=4, offset='border'),
    'no_mask': dict(mask=False),
    'no_mask_int': dict(mask=False, offset='int'),
    'no_bias': dict(bias=False),
    'kernel3x5': dict(k=(3, 5), padding=(1, 2), offset='border'),
    'kernel1x1': dict(k=(1, 1), padding=0),
    'asymmetric_params': dict(k=(2, 3), stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
    'batch1_square': dict(b=1, size=(6, 6)),
    'batch3_odd': dict(b=3, size=(5, 11), offset='outside', mask=False, bias=False),
}


@pytest.mark.parametrize('config', list(CASES.values()), ids=list(CASES))
def test_pytorch_matches_torchvision(config):
    case, params = _make_case(**config)
    out_tv, grads_tv = _run('torchvision', case, params)
    out_pt, grads_pt = _run('pytorch', case, params)
    torch.testing.assert_close(out_pt, out_tv, rtol=RTOL, atol=ATOL)
    assert set(grads_pt) == set(grads_tv) == {k for k, v in case.items() if v is not None}
    for name in grads_tv:
        torch.testing.assert_close(grads_pt[name], grads_tv[name], rtol=RTOL, atol=ATOL, msg=lambda m: f'{name}: {m}')


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


def test_gradcheck_pytorch_backend():
    gen = torch.Generator().manual_seed(3)
    # 2 channels, 2 offset groups, 2x2 kernel, padding 1: output 3x4. Fractional parts of the offsets are kept in
    # [0.2, 0.8] so that finite differences never cross an integer; some samples fall outside the image.
    x = torch.randn(1, 2, 2, 3, generator=gen, dtype=DTYPE, requires_grad=True)
    offset = (torch.randint(-2, 3, (1, 2 * 2 * 4, 3, 4), generator=gen) + 0.2 +
              0.6 * torch.rand(1, 2 * 2 * 4, 3, 4, generator=gen, dtype=DTYPE)).requires_grad_()
    weight = torch.randn(2, 2, 2, 2, generator=gen, dtype=DTYPE, requires_grad=True)
    bias = torch.randn(2, generator=gen, dtype=DTYPE, requires_grad=True)
    mask = torch.rand(1, 2 * 4, 3, 4, generator=gen, dtype=DTYPE, requires_grad=True)

    def fn(x, offset, weight, bias, mask):
        return dc._dispatch(x, offset, weight, bias, 1, 1, 1, mask, backend='pytorch')

    assert torch.autograd.gradcheck(fn, (x, offset, weight, bias, mask), eps=1e-6, atol=1e-6)


def test_float32_and_batch_chunks(monkeypatch):
    case, params = _make_case(b=3, c_in=8, c_out=8, offset_groups=2)
    case = {k: v.float() for k, v in case.items()}
    expected = torchvision.ops.deform_conv2d(**case, **params)
    monkeypatch.setattr(dc, '_MAX_COLUMN_ELEMENTS', 1)  # one image per chunk
    with ops.use_backend('pytorch'):
        out = ops.deform_conv2d(**case, **params)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


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
