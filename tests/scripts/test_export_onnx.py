"""scripts/export_onnx.py on tiny nets: export, onnxruntime against PyTorch, dynamic sizes, clear errors.

Exporting needs the onnx package (the module skips without it); the onnxruntime parts skip when onnxruntime is not
installed (``pip install -e .[onnx]`` installs both).
Nets get random weights (``randomize``): untrained ones have zero output convs and offset predictors, which would
make the comparison trivial (and the deformable convs sample only integer positions).
"""
import json
import os

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import deblurzoo  # noqa: F401  (registers everything; patches BasicSR first)
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from deblurzoo.archs.protocol import arch_info
from data_factory import load_script
from test_registry import TINY

pytest.importorskip('onnx', reason='scripts/export_onnx.py needs the onnx package to export')

ARCHS = sorted(k for k, v in ARCH_REGISTRY._obj_map.items() if v.__module__.startswith('deblurzoo'))
SIZE = (24, 32)  # dynamic exports are traced at (25, 33) and checked there and at (24, 32)


@pytest.fixture(scope='module')
def script():
    return load_script('export_onnx')


def _tiny(script, name, **kwargs):
    if name not in TINY:
        pytest.fail(f'add tiny kwargs for {name} to TINY in tests/test_registry.py')
    torch.manual_seed(0)
    return script.randomize(build_network({'type': name, **TINY[name], **kwargs}).eval())


def script_kind(net):
    return arch_info(net).mode


def _run_ort(path, x):
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session, session.run(None, {'input': x.numpy()})[0]


@pytest.mark.parametrize('arch', ['AtrousNet', 'SVDN'])
def test_exports_with_dynamic_size_and_matches_pytorch(script, tmp_path, arch):
    net = _tiny(script, arch)
    path = tmp_path / f'{arch}.onnx'
    info = script.export_onnx(net, str(path), arch, 'image', SIZE, dynamic=True)
    assert path.is_file() and info['opset'] == script.DEFAULT_OPSET
    assert info['traced'] == (1, 3, 25, 33) and info['check_sizes'] == [(25, 33), SIZE]
    pytest.importorskip('onnxruntime')
    results = script.check_onnx(net, str(path), info['check_sizes'], arch, dynamic=True)
    assert [r['shape'] for r in results] == [(1, 3, 25, 33), (1, 3, 24, 32)]
    assert max(r['max_diff'] for r in results) < 1e-5
    with pytest.raises(script.MismatchError, match=f'{arch}: onnxruntime and PyTorch differ by up to'):
        script.check_onnx(net, str(path), info['check_sizes'], arch, tolerance=-1)  # no difference passes
    # a third size, no multiple of anything the net pads to
    x = script.make_input((19, 41), seed=3)
    session, got = _run_ort(path, x)
    assert session.get_inputs()[0].shape == [1, 3, 'height', 'width']
    with torch.no_grad(), script.deform_backend(net, 'gather'):
        ref = net(x).numpy()
    assert got.shape == ref.shape == (1, 3, 19, 41)
    assert np.abs(got - ref).max() < 1e-5


def test_svdn_as_onnx_deformconv(script, tmp_path):
    import onnx
    net = _tiny(script, 'SVDN')
    path = tmp_path / 'svdn.onnx'
    info = script.export_onnx(net, str(path), 'SVDN', 'image', SIZE, dynamic=True, deform='onnx')
    assert info['opset'] == script.DEFORM_CONV_OPSET
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count('DeformConv') == 2 and 'GatherElements' not in ops
    pytest.importorskip('onnxruntime')
    results = script.check_onnx(net, str(path), info['check_sizes'], 'SVDN', deform='onnx', dynamic=True)
    assert max(r['max_diff'] for r in results) < 1e-5


def _option_file_and_checkpoint(script, folder):
    """(net, checkpoint, option file) of a tiny AtrousNet: the option file names the checkpoint."""
    net = _tiny(script, 'AtrousNet')
    ckpt = folder / 'net.pth'
    torch.save({'params': net.state_dict()}, ckpt)
    opt = folder / 'test_atrous.yml'
    opt.write_text(yaml.safe_dump({'name': 'x', 'network_g': {'type': 'AtrousNet', **TINY['AtrousNet']},
                                   'path': {'pretrain_network_g': str(ckpt), 'param_key_g': 'params'}}))
    return net, ckpt, opt


def test_cli_option_file_and_checkpoint(script, tmp_path, capsys):
    net, ckpt, opt = _option_file_and_checkpoint(script, tmp_path)
    out = tmp_path / 'atrous.onnx'
    assert script.main(['--model', str(opt), '--output', str(out), '--size', *map(str, SIZE)]) == 0
    printed = capsys.readouterr()
    assert 'untrained' not in printed.err
    assert f'wrote {out}' in printed.out and "(1, 3, 24, 32)" in printed.out
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert 'check was skipped' in printed.out
        return
    assert 'matches PyTorch' in printed.out
    x = script.make_input(SIZE, seed=5)
    _, got = _run_ort(out, x)
    with torch.no_grad():
        ref = net(x).numpy()  # the checkpoint's weights were exported
    assert np.abs(got - ref).max() < 1e-5


def test_cli_arch_name_warns_untrained(script, tmp_path, capsys):
    out = tmp_path / 'svdn.onnx'
    argv = ['--model', 'SVDN', '--kwargs', json.dumps(TINY['SVDN']), '--output', str(out), '--size', '20', '20']
    assert script.main(argv) == 0
    assert 'untrained SVDN' in capsys.readouterr().err
    assert out.is_file()


def test_never_replaces_the_checkpoint_or_the_option_file(script, tmp_path, capsys):
    _, ckpt, opt = _option_file_and_checkpoint(script, tmp_path)
    (tmp_path / 'link.pth').symlink_to(ckpt)
    before = ckpt.read_bytes(), opt.read_bytes()
    for argv in (['--model', str(opt), '--output', str(ckpt)],  # the option file's checkpoint
                 ['--model', str(opt), '--output', str(opt)],
                 ['--model', 'AtrousNet', '--kwargs', json.dumps(TINY['AtrousNet']), '--weights', str(ckpt),
                  '--output', str(tmp_path / 'link.pth')]):  # another name of --weights
        assert script.main(argv + ['--size', *map(str, SIZE)]) == 1
        assert 'is an input; not overwriting it' in capsys.readouterr().err
    assert (ckpt.read_bytes(), opt.read_bytes()) == before


def test_a_failed_check_leaves_an_existing_output_alone(script, tmp_path, capsys):
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'svdn.onnx'
    out.write_bytes(b'mine')
    argv = ['--model', 'SVDN', '--kwargs', json.dumps(TINY['SVDN']), '--output', str(out), '--size', '20', '20',
            '--randomize', '--tolerance', '-1']  # no difference passes: the check fails
    assert script.main(argv) == 1
    assert f'({out} not written)' in capsys.readouterr().err
    assert out.read_bytes() == b'mine' and os.listdir(tmp_path) == ['svdn.onnx']  # no temporary file left


class _CumMaxNet(nn.Module):
    """An op without an ONNX symbolic (aten::cummax)."""

    def forward(self, x):
        return torch.cummax(x, dim=3).values


class _FixedSizeNet(nn.Module):
    """Sizes read as Python ints: constants in the traced graph."""

    def forward(self, x):
        h, w = int(x.shape[2]), int(x.shape[3])
        return x.reshape(1, 3, h * w).flip(2).reshape(1, 3, h, w)


def test_unexportable_op_is_named_with_the_arch(script, tmp_path):
    with pytest.raises(script.ExportError, match=r"CumMaxNet cannot be exported to ONNX .*aten::cummax"):
        script.export_onnx(_CumMaxNet(), str(tmp_path / 'x.onnx'), 'CumMaxNet', 'image', SIZE)
    assert not (tmp_path / 'x.onnx').exists()
    with pytest.raises(script.ExportError, match=r'SVDN: --deform onnx .*DeformConv.*opset >= 19'):
        script.export_onnx(_tiny(script, 'SVDN'), str(tmp_path / 'x.onnx'), 'SVDN', 'image', SIZE, opset=17,
                           deform='onnx')


def test_fixed_size_graph_fails_the_dynamic_check_clearly(script, tmp_path):
    pytest.importorskip('onnxruntime')
    path = str(tmp_path / 'fixed.onnx')
    net = _FixedSizeNet()
    info = script.export_onnx(net, path, 'FixedSizeNet', 'image', SIZE, dynamic=True)
    with pytest.raises(script.ExportError, match=r'FixedSizeNet: onnxruntime fails at input \(1, 3, 24, 32\) in the '
                       r"Reshape node .*H and W are not dynamic for FixedSizeNet"):
        script.check_onnx(net, path, info['check_sizes'], 'FixedSizeNet', dynamic=True)
    assert script.check_onnx(net, path, info['check_sizes'][:1], 'FixedSizeNet')[0]['max_diff'] == 0  # traced size


def test_cli_errors_exit_nonzero_with_a_message(script, tmp_path, capsys):
    argv = ['--model', 'SVDN', '--kwargs', json.dumps(TINY['SVDN']), '--output', str(tmp_path / 'x.onnx'),
            '--deform', 'onnx', '--opset', '17']
    assert script.main(argv) == 1
    assert 'error: SVDN: --deform onnx' in capsys.readouterr().err
    assert script.main(['--model', 'NoSuchNet', '--output', str(tmp_path / 'x.onnx')]) == 1
    assert 'neither an option file nor a registered arch' in capsys.readouterr().err


@pytest.mark.parametrize('arch', ARCHS)
def test_every_arch_exports_and_matches_or_says_why(script, tmp_path, arch):
    """Each registered arch either exports at a fixed size and matches PyTorch in onnxruntime, or raises ExportError
    naming the arch and the operator or code that stopped it (documented in scripts/export_onnx.py)."""
    net = _tiny(script, arch)
    kind = script_kind(net)
    path = str(tmp_path / f'{arch}.onnx')
    frames = 1 if kind == 'sequence' else None  # the graph is unrolled over the frames: one is enough here
    try:
        info = script.export_onnx(net, path, arch, kind, SIZE, frames=frames)
    except script.ExportError as err:
        message = str(err)
        assert message.startswith(f'{arch} cannot be exported to ONNX'), message
        assert 'unsupported operator' in message or ' in ' in message, message  # the op or the code path
        return
    pytest.importorskip('onnxruntime')
    results = script.check_onnx(net, path, info['check_sizes'], arch, info['frames'])  # raises on a mismatch
    # only adaptive sampling (top-N near-ties) may leave values beyond the tolerance
    assert results[0]['over'] == 0 or arch_info(net).adaptive
