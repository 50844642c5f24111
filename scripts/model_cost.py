"""Parameters and multiply-accumulates of a registered arch, per sampling policy for adaptive ones.

    python scripts/model_cost.py --arch SAPHNet --size 256 256
    python scripts/model_cost.py --arch SAPHNet --size 256 256 --kwargs '{"sampling": "uniform"}'
    python scripts/model_cost.py --arch SARN --kwargs '{"num_drm": 3, "with_sa": false}'
    python scripts/model_cost.py --arch SARNRecurrent --frames 4
    python scripts/model_cost.py --arch SARN --size 720 1280 --part body.attention

Video archs get a clip: window archs (a ``num_frame`` attribute, e.g. SARNMulti) their ``num_frame`` frames,
recurrent ones (a ``stream`` method, e.g. SARNRecurrent) ``--frames`` frames; MACs are then given per restored frame.
Model size is float32 bytes (1 MB = 1e6 bytes, as papers quote it).

MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (which reports 2 FLOPs per MAC) over one eval forward
on a random image, with deblurzoo's 'pytorch' deformable-conv backend so that deformable and pixel-dependent filtering
is counted (the compiled torchvision kernel is invisible to the counter). ``--part NAME`` (a submodule's name in
``net.named_modules()``, repeatable) also prints that submodule's MACs and their ratio to the rest of the forward.
Index/gather ops have no MACs. The counter only knows convolutions and matrix products; the other arithmetic ops the
forward ran (activations, elementwise sums and products, softmax, normalisation, bilinear interpolation...) are listed
as "not counted".

The counting helpers here (:func:`build`, :func:`make_input`, :func:`policies`, :func:`count_cost`) are shared with
``scripts/benchmark.py``, and the argument readers (:func:`parse_size`, :func:`arch_kwargs`) with it and
``scripts/bench_sampling.py``: a bad size, arch name or constructor argument is a usage error saying what is wrong
(the closest name, the accepted keys), not a traceback.
"""
import argparse
import json
import os.path as osp
import sys
import time
from collections import defaultdict

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry, sdpa_flop_count

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import deblurzoo  # noqa: E402,F401  (registers the archs)
from basicsr.archs import build_network  # noqa: E402
from basicsr.utils.registry import ARCH_REGISTRY  # noqa: E402
from deblurzoo.archs.protocol import arch_info  # noqa: E402
from deblurzoo.option_keys import check_constructor_keys, registered  # noqa: E402
from deblurzoo.ops import use_backend  # noqa: E402

# aten ops that only create, move, copy, reshape, convert or select data: no arithmetic, hence no FLOPs
DATA_MOVEMENT = frozenset('''
    _local_scalar_dense _reshape_alias _to_copy _unsafe_view alias arange as_strided cat chunk clone
    constant_pad_nd contiguous copy copy_ detach empty empty_like empty_strided expand expand_as fill fill_ flatten
    flip full full_like gather index index_put index_put_ index_select lift_fresh lift_fresh_copy masked_fill
    masked_fill_ narrow new_empty new_empty_strided new_full new_ones new_zeros ones ones_like permute pixel_shuffle
    pixel_unshuffle reflection_pad1d reflection_pad2d reflection_pad3d repeat replication_pad1d replication_pad2d
    replication_pad3d reshape roll rot90 scatter scatter_ select slice split split_with_sizes squeeze stack t
    transpose unbind unflatten unfold unsqueeze view zero_ zeros zeros_like
'''.split())


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# formulas torch's flop_registry lacks: the CPU flash-attention kernel that ``F.scaled_dot_product_attention`` runs on
# CPU (the CUDA kernels are registered; without this, attention's matrix products would be counted on GPU only)
EXTRA_FORMULAS = {
    getattr(torch.ops.aten, name): _cpu_sdpa_flop
    for name in ('_scaled_dot_product_flash_attention_for_cpu', ) if hasattr(torch.ops.aten, name)
}


def counted_ops():
    """Names of the aten ops the counter has a formula for (this torch's ``flop_registry`` + ``EXTRA_FORMULAS``)."""
    return {getattr(op, '__name__', str(op)).split('.')[-1] for op in (*flop_registry, *EXTRA_FORMULAS)}


class OpRecorder(TorchDispatchMode):
    """Records every aten op a forward dispatches: calls and elements written (the sum of its outputs' numel)."""

    def __init__(self):
        super().__init__()
        self.ops = defaultdict(lambda: {'calls': 0, 'elements': 0})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        record = self.ops[func._overloadpacket.__name__]
        record['calls'] += 1
        outs = out if isinstance(out, (tuple, list)) else (out, )
        record['elements'] += sum(t.numel() for t in outs if torch.is_tensor(t))
        return out

    def split(self):
        """``(counted, data_movement, not_counted)``: the recorded ops split by what FlopCounterMode makes of them:
        ops with a FLOP formula, zero-FLOP data movement, and arithmetic it cannot see. Each {name: record}, the
        not-counted ones by elements written, most first."""
        counted, known = {}, counted_ops()
        movement, other = {}, {}
        for name, record in self.ops.items():
            (counted if name in known else movement if name in DATA_MOVEMENT else other)[name] = dict(record)
        other = dict(sorted(other.items(), key=lambda item: -item[1]['elements']))
        return counted, movement, other


def parse_size(text):
    """'1280x720' (width x height) -> (720, 1280) (h, w); an ``argparse`` type."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size {text!r}: write WIDTHxHEIGHT, e.g. 1280x720') from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f'size {text!r}: width and height must be positive')
    return h, w


def arch_kwargs(arch, text, option='--kwargs'):
    """``text``, a JSON object of constructor arguments of the registered ``arch`` -> dict. A ValueError names
    ``option`` and says what is wrong: an unknown arch (with the closest registered name), text that is not a JSON
    object, or keys the constructor does not take (with the closest accepted key and all of them)."""
    try:
        cls = registered(ARCH_REGISTRY, arch)
    except KeyError as err:
        raise ValueError(f'{option}: {err.args[0]}') from None
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'{option}: not valid JSON ({err}): {text}') from None
    if not isinstance(kwargs, dict):
        raise ValueError(f'{option}: a JSON object of constructor arguments, e.g. {{"num_feat": 32}}; got {text}')
    try:
        check_constructor_keys(cls, kwargs, f'{option} ({arch})')
    except TypeError as err:
        raise ValueError(str(err)) from None
    return kwargs


def build(arch, kwargs=None, device=None, seed=0):
    """The registered ``arch`` built with ``kwargs`` (seeded), in eval mode; on ``device`` when given (e.g.
    ``'meta'``: parameters without storage, for counting without computing)."""
    torch.manual_seed(seed)
    opt = {'type': arch, **(kwargs or {})}
    if device is None:
        return build_network(opt).eval()
    with torch.device(device):
        return build_network(opt).eval()


def clip_layout(net, frames=2):
    """``(frames_in, restored)``: frames in the input clip (None for image archs) and frames one forward restores, by
    the arch's declared frame mode: window archs take ``num_frame`` frames and restore one, sequence archs take and
    restore ``frames``."""
    info = arch_info(net)
    if info.mode == 'window':
        return info.num_frame, 1
    if info.mode == 'sequence':
        return frames, frames
    return None, 1


def make_input(net, h, w, frames=2, device='cpu'):
    """A random input of the shape ``net`` takes at h x w: (1, 3, h, w) or a (1, t, 3, h, w) clip (see
    :func:`clip_layout`); returns ``(x, restored)``, ``restored`` being the frames one forward restores."""
    frames_in, restored = clip_layout(net, frames)
    shape = (1, 3, h, w) if frames_in is None else (1, frames_in, 3, h, w)
    return torch.rand(shape, device=device), restored


def policies(net):
    """Sampling policies to count: ['uniform', 'greedy'] for adaptive nets (greedy is their eval default), else
    [None] (the plain forward)."""
    return ['uniform', 'greedy'] if arch_info(net).adaptive else [None]


def count_cost(net, x, policy=None):
    """MACs of one eval forward of ``net`` on ``x`` and the ops it ran, on whatever device ``net`` and ``x`` are
    (the 'meta' device counts shapes without computing).

    Returns:
        dict: ``macs`` (float, the whole forward), ``seconds`` (the forward while counting), ``counted``,
        ``data_movement`` and ``not_counted`` ({op: {'calls', 'elements'}}, see :meth:`OpRecorder.split`), ``parts``
        ({submodule name as in ``net.named_modules()``: MACs} for every submodule that ran counted ops).
    """
    recorder = OpRecorder()
    kwargs = {} if policy is None else {'policy': policy}
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    with use_backend('pytorch'), torch.no_grad(), counter, recorder:
        start = time.perf_counter()
        net(x, **kwargs)
        seconds = time.perf_counter() - start
    counted, movement, other = recorder.split()
    prefix = type(net).__name__ + '.'
    parts = {name[len(prefix):]: sum(ops.values()) / 2
             for name, ops in counter.get_flop_counts().items() if name.startswith(prefix)}
    return dict(macs=counter.get_total_flops() / 2, seconds=seconds, counted=counted, data_movement=movement,
                not_counted=other, parts=parts)


def count(net, x, **kwargs):
    """``(MACs, seconds)`` of one eval forward of ``net`` on ``x`` (``kwargs``: e.g. ``policy``)."""
    result = count_cost(net, x, kwargs.pop('policy', None), **kwargs)
    return result['macs'], result['seconds']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', required=True)
    parser.add_argument('--size', type=int, nargs=2, default=(256, 256), metavar=('H', 'W'))
    parser.add_argument('--kwargs', default='{}', help='constructor arguments as JSON')
    parser.add_argument('--frames', type=int, default=2, help='clip length for recurrent video archs (default: 2)')
    parser.add_argument('--part', action='append', default=[], metavar='NAME',
                        help='also print the MACs of this submodule (e.g. body.attention) and their ratio to the rest')
    args = parser.parse_args(argv)
    try:
        kwargs = arch_kwargs(args.arch, args.kwargs)
    except ValueError as err:
        parser.error(str(err))
    if min(args.size) < 1 or args.frames < 1:
        parser.error('--size and --frames must be at least 1')
    net = build(args.arch, kwargs)
    names = dict(net.named_modules())
    unknown = [name for name in args.part if name not in names]
    if unknown:
        parser.error(f"--part {', '.join(unknown)}: no such submodule of {args.arch}; its top-level ones: "
                     f"{', '.join(name for name, _ in net.named_children())}")
    params = sum(p.numel() for p in net.parameters())
    print(f'{args.arch} {kwargs or ""}: {params:,} parameters ({params / 1e6:.2f}M, '
          f'{4 * params / 1e6:.2f} MB float32)')
    x, per = make_input(net, *args.size, frames=args.frames)
    video = x.dim() == 5
    results, not_counted = {}, {}
    for policy in policies(net):
        result = count_cost(net, x, policy)
        macs = result['macs'] / per
        results[policy] = macs
        not_counted.update(result['not_counted'])
        name = {None: '', 'uniform': ' (uniform sampling)', 'greedy': ' (adaptive sampling, top-N)'}[policy]
        size = f'{args.size[0]}x{args.size[1]}'
        unit = ' per frame' if video else ''
        print(f"  {macs / 1e9:.1f} G MACs{unit} at {size}{name}; CPU forward {result['seconds']:.1f} s "
              '(while counting)')
        for part in args.part:
            part_macs = result['parts'].get(part, 0.) / per
            rest = macs - part_macs
            ratio = f'{part_macs / rest:.4f}' if rest else 'n/a'
            print(f'    {part}: {part_macs / 1e9:.3f} G MACs{unit}; the rest {rest / 1e9:.1f} G; '
                  f'{part} / rest = {ratio}')
    if len(results) == 2:
        print(f"  adaptive / uniform = {results['greedy'] / results['uniform']:.3f}")
    if not_counted:
        print(f"  not counted (no FLOP formula): {', '.join(not_counted)}")


if __name__ == '__main__':
    main()
