"""Export a deblurzoo network to ONNX, and check the ONNX model against PyTorch with onnxruntime.

    python scripts/export_onnx.py --model SVDN --weights net_g_latest.pth --output svdn.onnx --dynamic
    python scripts/export_onnx.py --model options/demo/test_svdn_demo.yml --output svdn.onnx --size 720 1280
    python scripts/export_onnx.py --model AtrousNet --kwargs '{"num_block": 4}' --randomize --output a.onnx
    python scripts/export_onnx.py --model SARNRecurrent --weights net.pth --frames 8 --output sarn_rec.onnx
    python scripts/export_onnx.py --model SVDN --weights net.pth --deform onnx --output svdn_dcn.onnx  # opset 19

``--model`` is a registered arch name or an option file, loaded by ``deblurzoo.inference.loader.load_model`` (checkpoint
defaults, ``params_ema`` before ``params``); ``--kwargs`` gives an arch's constructor arguments (then ``--model`` must
be an arch name). Without ``--weights`` an arch name exports the untrained net, with a warning: its zero-initialised
output convs make it the identity, so add ``--randomize`` (seeded random weights) to check a graph whose every layer
matters.

The model: one input ``input``, float32 RGB in [0, 1], batch 1: (1, 3, H, W) for image nets, (1, num_frame, 3, H, W)
for window nets (restoring the centre frame: (1, 3, H, W)), (1, F, 3, H, W) for recurrent nets (``--frames`` F,
default 5: ``forward`` over the clip is unrolled, the recurrent state stays inside the graph, so the model restores
exactly F frames, (1, F, 3, H, W); a longer video goes clip by clip, each clip starting the recurrence afresh, unlike
``stream``); one output ``output``. Without ``--dynamic`` H x W is ``--size`` (default 256 x 256); with it H and W are
free axes (``height``, ``width``).

Exporter: PyTorch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``; deprecated since torch 2.9, works
in 2.14), default opset 17; it needs the onnx package (not onnxscript): ``pip install -e .[onnx]`` installs onnx and
onnxruntime. The torch.export-based exporter (``dynamo=True``, needs onnxscript) did worse here (torch 2.14.1,
onnxscript 0.7.2, opset 18): an invalid SVDN model (a node input that nothing produces), SARN/SARNMulti/SARNRecurrent
failing to translate scaled_dot_product_attention, DMPHN stopped by a data-dependent check, and dynamic H/W failing
for AtrousNet and SVDN (``Dim`` with inconsistent bounds).

Deformable convolutions (SVDN, SARN*, SAPHNet's pixel-dependent filter) export one of two ways (``--deform``), also in
nets built with an explicit ``dcn_backend``:

* ``gather`` (default): deblurzoo's 'pytorch' backend, a four-corner gather in plain ONNX ops (Floor, GatherElements,
  Where, MatMul...): any runtime; SVDN exports down to opset 11, SARN* need opset 14 (their attention).
* ``onnx``: torchvision's kernel as ONNX's DeformConv operator (opset >= 19; onnxruntime 1.31 runs it on CPU): a
  smaller graph, for runtimes that have DeformConv.

Dynamic H/W: the nets pad inside to a multiple (``pad_to_multiple``) with sizes computed in Python, and the tracer
records only the branch it runs; ``--dynamic`` therefore traces at an odd size (``--size`` rounded up to odd), so the
padding is in the graph, and checks onnxruntime at that size and at a second one (``--size`` if it is even, else
``--size`` rounded up to a multiple of 8). A graph with a size baked in fails there with an error naming the node.
Inputs smaller than the net's padding multiple (or AtrousNet's ``min_size``) are outside what a dynamic model handles.

The check (when onnxruntime is importable, else skipped with a note): PyTorch and onnxruntime (CPU) on one seeded
random input per size, other than the traced one (``--seed``); it fails when a value differs by more than
``--tolerance`` (1e-4, scaled by the output's largest magnitude where that is above 1; adaptive nets: below).
Failures are :class:`ExportError`: the CLI prints the message, which names the arch and the operator, ONNX node or
code responsible, removes the .onnx file and exits with 1.

Measured here (torch 2.14.1, onnxruntime 1.31.1, onnx 1.23.2, opset 17, ``--deform gather``, CPU; max |onnx - torch|
with ``--randomize``, at 257 x 257 and 256 x 256, default (paper) constructor arguments)::

    arch           fixed size  --dynamic  max diff        notes
    AtrousNet      yes         yes        1.2e-7          192 MB of weights
    MLFANet        yes         yes        1.2e-7          window net
    SVDN           yes         yes        1.5e-7          two deformable convs; --deform onnx: 1.2e-7
    SARN           yes         yes        4.8e-6          --deform onnx: 4.5e-6 (outputs up to ~3: random weights)
    SARNMulti      yes         yes        6.0e-6          window net
    SARNRecurrent  yes         yes        5.8e-5 (F = 3)  forward unrolled over --frames; outputs up to ~6
    DMPHN          yes         no         7.2e-7 or 0.1   greedy top-N sampling exports (TopK, ScatterND) and
                                                          follows the input, but the patch split, lattices and
                                                          budgets are Python numbers: one size per model; the
                                                          0.1 is near-ties (below)
    SAPHNet        yes         no         7.2e-7          (tiny net, 64 x 64) adaptive like DMPHN: one size per model

DMPHN and SAPHNet rank pixels by a probability map and process the top N at the coarser levels: where scores tie
at the N-th place, or differ there by float rounding (which also varies with the thread count), onnxruntime's TopK
and torch.topk keep different pixels, and the outputs differ locally. Measured with random weights at 256 x 256,
seven inputs: 0 to 1.3% of the output values beyond the tolerance (up to 0.1), against 99.9% for another choice of
pixels (uniform sampling), so the check lets adaptive nets have up to 5% (``ADAPTIVE_OVER``) and prints the fraction.

``tests/scripts/test_export_onnx.py`` exports every registered arch (tiny, at a fixed size) and checks it, or expects
an :class:`ExportError` naming the arch and the operator or code, so a newly registered arch is covered; update the
table when what it finds changes.
"""
import argparse
import contextlib
import inspect
import io
import json
import math
import os
import os.path as osp
import re
import sys
import tempfile
import traceback
import warnings

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import deblurzoo  # noqa: E402  (registers the archs; patches BasicSR first)
from basicsr.archs import build_network  # noqa: E402
from basicsr.utils.registry import ARCH_REGISTRY  # noqa: E402
from deblurzoo.archs.protocol import arch_info  # noqa: E402
from deblurzoo.data import output_guard, safe_io  # noqa: E402
from deblurzoo.inference import InferenceError, load_weights  # noqa: E402
from deblurzoo.inference.loader import LoadedModel, load_model  # noqa: E402
from deblurzoo.ops import ModulatedDeformConv, use_backend  # noqa: E402

DEFAULT_OPSET = 17
DEFORM_CONV_OPSET = 19  # ONNX DeformConv appeared in opset 19
DEFORM_MODES = {'gather': 'pytorch', 'onnx': 'torchvision'}  # --deform -> deblurzoo.ops backend
DEFAULT_FRAMES = 5  # recurrent nets' clip length
TOLERANCE = 1e-4
# fraction of output values an adaptively sampling net may have beyond the tolerance (measured with DMPHN at
# 256 x 256, random weights: 0 to 1.3% from near-ties at the top-N cut, 99.9% for another choice of pixels)
ADAPTIVE_OVER = 0.05
INPUT, OUTPUT = 'input', 'output'
_PACKAGE_DIR = osp.dirname(osp.abspath(deblurzoo.__file__))


class ExportError(RuntimeError):
    """The net cannot be exported as asked, or the exported model does not match PyTorch; the message names the arch
    and the operator (or the code) responsible."""


class MismatchError(ExportError):
    """onnxruntime runs the model but its output differs from PyTorch's by more than the tolerance."""


# --------------------------------------------------------------------------------------------------------------------
# models and inputs
# --------------------------------------------------------------------------------------------------------------------


def load_net(model, weights=None, kwargs=None, param_key=None, warn_untrained=True):
    """The network to export, in eval mode on the CPU (:func:`deblurzoo.inference.loader.load_model`).

    Args:
        model (str): A registered arch name or an option file.
        weights (str | None): Checkpoint (default: the option file's).
        kwargs (dict | None): Constructor arguments of the arch ``model`` names.
        param_key (str | None): Checkpoint key.
        warn_untrained (bool): Warn (on stderr) when an arch name comes without weights.

    Returns:
        LoadedModel: ``net``, ``arch``, ``kind`` ('image', 'window' or 'sequence'), ``weights``.
    """
    if not kwargs:
        if weights is None and model in ARCH_REGISTRY and warn_untrained:
            print(f'export_onnx.py: warning: no --weights: exporting the untrained {model}', file=sys.stderr)
        return load_model(model, weights, param_key, device='cpu')
    if model not in ARCH_REGISTRY:
        raise InferenceError(f'--kwargs needs --model to be a registered arch name, got {model!r}')
    network_opt = {'type': model, **kwargs}
    try:
        net = build_network(dict(network_opt))
    except TypeError as err:  # unknown or missing constructor keys
        raise InferenceError(f'--kwargs: {err}') from None
    if weights:
        load_weights(net, weights, param_key, model)
    elif warn_untrained:
        print(f'export_onnx.py: warning: no --weights: exporting the untrained {model}', file=sys.stderr)
    return LoadedModel(net.eval().requires_grad_(False), network_opt, weights)


def randomize(net, seed=0, scale=0.1):
    """Make every layer matter to the check (seeded): weight tensors that are constant (the zero-initialised output
    convs and offset predictors) get N(0, 1 / fan_in) draws, the other parameters seeded Gaussian noise of ``scale``
    times their own spread (their standard deviation, or 1 for scalars and constant vectors), so that the output is
    no longer the input and the deformable convs sample at fractional offsets, while a deep net's activations keep
    the scale its initialisation gave them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            spread = float(p.std()) if p.numel() > 1 else 0.0
            if p.dim() > 1 and spread == 0:
                p.copy_(noise / math.sqrt(p[0].numel()))
            else:
                p.add_(noise * scale * (spread or 1.0))
    return net


def frames_in(net, kind, frames=None):
    """Frames of the input clip: None for image nets, ``num_frame`` for window nets, ``frames`` (default
    :data:`DEFAULT_FRAMES`) for sequence (recurrent) ones; ``kind``: the net's declared frame mode."""
    if kind == 'image':
        if frames:
            raise ExportError('--frames: this is an image net')
        return None
    if kind == 'window':
        num_frame = arch_info(net).num_frame
        if frames and frames != num_frame:
            raise ExportError(f'--frames: this window net takes num_frame = {num_frame} frames, got {frames}')
        return num_frame
    frames = frames or DEFAULT_FRAMES
    if frames < 1:
        raise ExportError(f'--frames: must be >= 1, got {frames}')
    return frames


def make_input(size, frames=None, seed=0):
    """A seeded random input in [0, 1]: (1, 3, h, w), or (1, frames, 3, h, w)."""
    shape = (1, 3, *size) if frames is None else (1, frames, 3, *size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def traced_sizes(size, dynamic):
    """(size traced, sizes checked): fixed models are traced and checked at ``size``; dynamic ones are traced at the
    odd size at or above ``size`` (so that the nets' pad-to-a-multiple step is traced) and checked there and at a
    second size (``size`` if it is even, else ``size`` rounded up to a multiple of 8)."""
    size = tuple(size)
    if not dynamic:
        return size, [size]
    traced = tuple(s | 1 for s in size)
    second = size if size != traced else tuple(8 * math.ceil((s + 1) / 8) for s in size)
    return traced, [traced, second]


# --------------------------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------------------------


def _deform_conv2d_symbolic():
    """The TorchScript exporter's symbolic of ``torchvision::deform_conv2d``: ONNX DeformConv (opset 19), which takes
    the same (dy, dx) offsets per kernel point and the same optional mask."""
    from torch.onnx import symbolic_helper

    @symbolic_helper.parse_args('v', 'v', 'v', 'v', 'v', 'i', 'i', 'i', 'i', 'i', 'i', 'i', 'i', 'b')
    def symbolic(g, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                 offset_groups, use_mask):
        inputs = [input, weight, offset, bias] + ([mask] if use_mask else [])
        return g.op('DeformConv', *inputs, strides_i=[stride_h, stride_w], pads_i=[pad_h, pad_w, pad_h, pad_w],
                    dilations_i=[dil_h, dil_w], group_i=groups, offset_group_i=offset_groups)

    return symbolic


@contextlib.contextmanager
def deform_backend(net, deform):
    """Run ``net``'s deformable convolutions with the backend ``deform`` ('gather' or 'onnx') asks for, also in
    modules built with an explicit ``dcn_backend``; for 'onnx', torchvision's op exports as DeformConv."""
    if deform not in DEFORM_MODES:
        raise ExportError(f"--deform must be one of {', '.join(DEFORM_MODES)}, got {deform!r}")
    pinned = [(m, m.backend) for m in net.modules() if isinstance(m, ModulatedDeformConv) and m.backend is not None]
    for m, _ in pinned:
        m.backend = None
    registered = False
    try:
        if deform == 'onnx':
            torch.onnx.register_custom_op_symbolic('torchvision::deform_conv2d', _deform_conv2d_symbolic(),
                                                   DEFORM_CONV_OPSET)
            registered = True
        with use_backend(DEFORM_MODES[deform]):
            yield
    finally:
        for m, backend in pinned:
            m.backend = backend
        if registered:
            torch.onnx.unregister_custom_op_symbolic('torchvision::deform_conv2d', DEFORM_CONV_OPSET)


def describe_failure(exc):
    """One line on why an export failed: the unsupported operator, or the exception with the chain of deblurzoo
    functions it came from (``forward -> pixel_dependent_filter -> deform_conv2d -> ...``) and where."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ''
    if type(exc).__name__ == 'UnsupportedOperatorError':  # torch.onnx.errors.UnsupportedOperatorError
        return f'unsupported operator: {first}'
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if osp.abspath(f.filename).startswith(_PACKAGE_DIR + os.sep)]
    if not frames:
        return f'{type(exc).__name__}: {first}'
    chain = ' -> '.join(f.name for f in frames[-6:])
    where = f'{osp.relpath(frames[-1].filename, osp.dirname(_PACKAGE_DIR))}:{frames[-1].lineno}'
    return f'{type(exc).__name__} in {chain} ({where}): {first}'


@contextlib.contextmanager
def _swallow_stdout():
    """Discard what C++ code writes to the process's stdout meanwhile (the TorchScript exporter prints its whole IR
    graph when it fails; the exception says what failed)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. pytest's capsys): leave it alone
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                sys.stdout.flush()
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def _legacy_export_kwargs():
    # the TorchScript exporter: dynamo=False where torch.onnx.export has the switch (the default up to torch 2.8)
    return {'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters else {}


def export_onnx(net, output, arch=None, kind=None, size=(256, 256), frames=None, opset=None, dynamic=False,
                deform='gather'):
    """Export ``net`` (eval mode) to ``output``.

    Args:
        net (nn.Module): The network.
        output (str): The .onnx file to write.
        arch (str | None): Its name, for messages. Default: the class name.
        kind (str | None): 'image', 'window' or 'sequence'; None: the arch's declared frame mode
            (``deblurzoo/archs/protocol.py``). Default: None.
        size (tuple[int, int]): (H, W) of a fixed model; a dynamic one is traced at the odd size at or above it.
        frames (int | None): Frames of a recurrent net's clip (default 5); window nets take their ``num_frame``.
        opset (int | None): ONNX opset; None: 17, or 19 with ``deform='onnx'``.
        dynamic (bool): Free H and W axes.
        deform (str): 'gather' or 'onnx' (see the module docstring).

    Returns:
        dict: ``opset``, ``frames`` (None for image nets), ``traced`` (the input shape traced), ``check_sizes``
        (the (H, W) sizes :func:`check_onnx` should run), ``dynamic``, ``deform``.

    Raises:
        ExportError: The export failed (the message names the arch and the operator or code responsible).
    """
    arch = arch or type(net).__name__
    if opset is None:
        opset = DEFORM_CONV_OPSET if deform == 'onnx' else DEFAULT_OPSET
    if deform == 'onnx' and opset < DEFORM_CONV_OPSET:
        raise ExportError(f'{arch}: --deform onnx exports deformable convolutions as ONNX DeformConv, which needs '
                          f'opset >= {DEFORM_CONV_OPSET} (got --opset {opset}); use --deform gather for older opsets')
    if min(size) < 1:
        raise ExportError(f'--size must be positive, got {tuple(size)}')
    try:
        import onnx  # the TorchScript exporter serialises through it (torch >= 2.9); also validates the model
    except ImportError:
        raise ExportError('exporting needs the onnx package: pip install onnx onnxruntime, or pip install -e .[onnx] '
                          '(onnxruntime for the check)') from None
    kind = kind or arch_info(net).mode
    frames = frames_in(net, kind, frames)
    traced, check_sizes = traced_sizes(size, dynamic)
    x = make_input(traced, frames, seed=0)  # check_onnx uses other inputs: nothing input-dependent hides
    net.eval()
    dynamic_axes = None
    if dynamic:
        out_dim = 5 if kind == 'sequence' else 4  # a sequence net restores the clip, the others one frame
        dynamic_axes = {INPUT: {x.dim() - 2: 'height', x.dim() - 1: 'width'},
                        OUTPUT: {out_dim - 2: 'height', out_dim - 1: 'width'}}
    with torch.no_grad(), deform_backend(net, deform):
        os.makedirs(osp.dirname(osp.abspath(output)), exist_ok=True)
        try:
            with warnings.catch_warnings(), _swallow_stdout():
                # tracer warnings (Python values fixed in the graph) and the exporter's deprecation notice: what
                # they warn about is checked by running onnxruntime at a second size
                warnings.simplefilter('ignore')
                buf = io.BytesIO()  # exported in memory, checked, then written atomically
                torch.onnx.export(net, (x, ), buf, input_names=[INPUT], output_names=[OUTPUT],
                                  opset_version=opset, dynamic_axes=dynamic_axes, **_legacy_export_kwargs())
        except Exception as exc:
            raise ExportError(f'{arch} cannot be exported to ONNX (opset {opset}, --deform {deform}): '
                              f'{describe_failure(exc)}') from exc
    try:
        onnx.checker.check_model(buf.getvalue())
    except Exception as exc:
        raise ExportError(f'{arch}: the exported {output} is not a valid ONNX model: {exc}') from exc
    safe_io.write_bytes_atomic(output, buf.getbuffer())
    return dict(opset=opset, frames=frames, traced=tuple(x.shape), check_sizes=check_sizes, dynamic=dynamic,
                deform=deform)


# --------------------------------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------------------------------


def onnxruntime_version():
    """onnxruntime's version, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def _ort_failure(exc):
    text = str(exc)
    node = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
    if node:
        message = text.split('Status Message:', 1)[-1].strip().splitlines()[0]
        message = re.sub(r'^/\S+:\d+\s+', '', message)  # onnxruntime's source file and line
        return f"in the {node.group(1)} node '{node.group(2)}': {message}"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def check_onnx(net, output, sizes, arch=None, frames=None, deform='gather', tolerance=TOLERANCE, dynamic=False,
               seed=1):
    """Run PyTorch and onnxruntime (CPU) on one seeded random input per size; needs onnxruntime.

    Args:
        net (nn.Module): The network exported.
        output (str): The .onnx file.
        sizes (list[tuple[int, int]]): (H, W) sizes to check (``export_onnx``'s ``check_sizes``).
        arch (str | None): For messages.
        frames (int | None): Frames of the clip (``export_onnx``'s ``frames``).
        deform (str): The backend PyTorch runs with ('gather' or 'onnx').
        tolerance (float): Largest absolute difference accepted, for outputs within [-1, 1]; larger outputs scale it
            by their largest magnitude (float32 rounding grows with the values).
        dynamic (bool): Whether H and W were meant to be dynamic (for the message when a second size fails).
        seed (int): Seed of the first input (the next sizes use seed + 1, ...); the export traced seed 0's, so
            that a value of the traced input frozen into the graph shows up as a difference.

    Nets that sample pixels adaptively (an ``adaptive`` attribute that is true: DMPHN, SAPHNet) may differ beyond the
    tolerance on up to :data:`ADAPTIVE_OVER` of the output values: their greedy top-N choice of pixels breaks
    near-ties (scores equal, or within float rounding, at the N-th place) differently in onnxruntime and PyTorch.

    Returns:
        list[dict]: Per size: ``shape`` (of the input), ``max_diff`` (max |onnx - torch|), ``over`` (the fraction of
        output values beyond the tolerance), ``tolerance`` (the bound applied).

    Raises:
        ExportError: onnxruntime cannot load or run the model at a size.
        MismatchError: Values beyond the tolerance (or non-finite).
    """
    import onnxruntime as ort

    arch = arch or type(net).__name__
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: failures come back as exceptions, do not also log them
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')  # no busy-waiting threads
    try:
        session = ort.InferenceSession(str(output), options, providers=['CPUExecutionProvider'])
    except Exception as exc:
        raise ExportError(f'{arch}: onnxruntime {ort.__version__} cannot load {output}: {_ort_failure(exc)}') from exc
    adaptive = arch_info(net).adaptive
    results = []
    for i, size in enumerate(sizes):
        x = make_input(size, frames, seed + i)
        with torch.no_grad(), deform_backend(net, deform):
            ref = net(x)
        if not torch.is_tensor(ref):
            raise ExportError(f'{arch} returns {type(ref).__name__} in eval mode, not one tensor')
        ref = ref.numpy()
        try:
            got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        except Exception as exc:
            message = f'{arch}: onnxruntime fails at input {tuple(x.shape)} {_ort_failure(exc)}'
            if dynamic and i > 0:
                message += (f'. It ran at the traced size {tuple(sizes[0])}: sizes computed in Python from the input '
                            f'size are constants in the traced graph, so H and W are not dynamic for {arch}; export '
                            f'a fixed size (without --dynamic)')
            raise ExportError(message) from exc
        if got.shape != ref.shape:
            raise ExportError(f'{arch}: onnxruntime returns {got.shape} at input {tuple(x.shape)}, PyTorch '
                              f'{ref.shape}' + (' (H and W are not dynamic for this arch)' if dynamic and i else ''))
        err = np.abs(got.astype(np.float64) - ref)
        bound = tolerance * max(1.0, float(np.abs(ref).max()))
        over = float((~(err <= bound)).mean())  # NaN counts as over
        results.append(dict(shape=tuple(x.shape), max_diff=float(err.max()), over=over, tolerance=bound))
        if over > (ADAPTIVE_OVER if adaptive else 0):
            message = (f'{arch}: onnxruntime and PyTorch differ by up to {float(err.max()):.3g} at input '
                       f'{tuple(x.shape)}, {over:.2%} of the values by more than the tolerance {bound:.3g}')
            if adaptive:
                message += (f' (at most {ADAPTIVE_OVER:.0%} may, where top-N pixel sampling breaks near-ties '
                            f'differently: see the module docstring; a frozen or wrong selection changes nearly all)')
            raise MismatchError(message)
    return results


# --------------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n\n'.join(__doc__.split('\n\n')[1:4]))
    parser.add_argument('--model', required=True, help='registered arch name or option file (YAML)')
    parser.add_argument('--weights', help="checkpoint (default: the option file's path.pretrain_network_g)")
    parser.add_argument('--param-key', help='checkpoint key (default: params_ema, else params)')
    parser.add_argument('--kwargs', type=json.loads, default=None,
                        help='constructor arguments of the arch --model names, as JSON')
    parser.add_argument('--output', required=True, help='the .onnx file to write')
    parser.add_argument('--size', type=int, nargs=2, default=(256, 256), metavar=('H', 'W'),
                        help='input height and width (default: 256 256); with --dynamic: the size checked')
    parser.add_argument('--frames', type=int, help=f'frames of a recurrent net\'s clip (default: {DEFAULT_FRAMES})')
    parser.add_argument('--opset', type=int, help=f'ONNX opset (default: {DEFAULT_OPSET}, {DEFORM_CONV_OPSET} with '
                        '--deform onnx)')
    parser.add_argument('--dynamic', action='store_true', help='free height and width axes')
    parser.add_argument('--deform', choices=tuple(DEFORM_MODES), default='gather',
                        help='deformable convs as plain gather ops (default) or as ONNX DeformConv (opset >= 19)')
    parser.add_argument('--tolerance', type=float, default=TOLERANCE,
                        help=f'largest |onnx - torch| accepted by the check, times the output\'s largest magnitude '
                        f'where that is above 1 (default: {TOLERANCE:g})')
    parser.add_argument('--seed', type=int, default=1,
                        help='seed of the check\'s random inputs (default: 1; the export traces seed 0\'s)')
    parser.add_argument('--randomize', action='store_true',
                        help='random weights (seeded; see randomize()) before exporting: to test an arch\'s export')
    parser.add_argument('--no-check', action='store_true', help='do not run onnxruntime')
    return parser.parse_args(argv)


def export(args):
    """The CLI's job (``args`` from :func:`parse_args`); returns ``export_onnx``'s info plus ``check`` (the
    differences, None when not checked)."""
    loaded = load_net(args.model, args.weights, args.kwargs, args.param_key, warn_untrained=not args.randomize)
    try:  # the checkpoint (also the option file's) or the option file under another name: never replaced
        output_guard.refuse_overwriting_inputs(args.output, [args.model, args.weights, loaded.weights], '--output')
    except ValueError as err:
        raise ExportError(str(err)) from None
    net, arch = loaded.net, loaded.arch
    if args.randomize:
        randomize(net)
    # written beside --output and renamed onto it only once checked: a file already there stays until then
    folder, name = osp.split(osp.abspath(args.output))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix='.onnx', dir=folder)
    os.close(fd)
    try:
        info = _export_checked(args, net, arch, loaded.kind, tmp)
        os.chmod(tmp, safe_io.default_mode(args.output))
        os.replace(tmp, args.output)
        print(f'export_onnx.py: wrote {args.output} ({osp.getsize(args.output) / 1e6:.1f} MB)')
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return info


def _export_checked(args, net, arch, kind, tmp):
    """Export to ``tmp`` and check it (:func:`export`)."""
    info = export_onnx(net, tmp, arch, kind, args.size, args.frames, args.opset, args.dynamic, args.deform)
    shape = list(info['traced'])
    if args.dynamic:
        shape[-2:] = ['height', 'width']
    print(f'export_onnx.py: exported {arch} ({kind} net), input '
          f"{INPUT!r} {tuple(shape)} float32 in [0, 1], opset {info['opset']}, deformable convs as "
          f"{'DeformConv' if args.deform == 'onnx' else 'gather ops'}")
    info['check'] = None
    version = onnxruntime_version()
    if args.no_check:
        return info
    if version is None:
        note = ' (so the dynamic height and width are unverified)' if args.dynamic else ''
        print(f'export_onnx.py: onnxruntime is not installed: the check was skipped{note}')
        return info
    try:
        info['check'] = check_onnx(net, tmp, info['check_sizes'], arch, info['frames'], args.deform,
                                   args.tolerance, args.dynamic, args.seed)
    except ExportError as err:  # not a model to use (--no-check keeps it, to debug); a file already there stays
        raise type(err)(f'{str(err).replace(tmp, args.output)} ({args.output} not written)') from err
    diffs = ', '.join(f"{'x'.join(map(str, r['shape']))}: {r['max_diff']:.2g}" +
                      (f" ({r['over']:.2%} of the values above {r['tolerance']:.2g}: top-N near-ties)" if r['over']
                       else '') for r in info['check'])
    print(f'export_onnx.py: onnxruntime {version} matches PyTorch: max |onnx - torch| {diffs} '
          f'(tolerance {args.tolerance:g})')
    return info


def main(argv=None):
    args = parse_args(argv)
    try:
        export(args)
    except (ExportError, InferenceError, OSError) as err:  # OSError: a full disk, ... (it names the file)
        print(f'export_onnx.py: error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
