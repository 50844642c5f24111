"""CPU speed of deblurzoo's default deformable convolution against torchvision's and a plain convolution.

    python scripts/bench_deform.py
    python scripts/bench_deform.py --shapes 1,64,180,320 4,64,64,64 --offset-groups 1 8 --repeats 5 --threads 2
    python scripts/bench_deform.py --json bench_deform.json

For every input shape (b, c, h, w) and offset-group count, a 3x3 modulated deformable convolution c -> c (``--out``)
with padding 1, bias and mask runs on float32 CPU tensors with random offsets (N(0, 2^2) pixels, so most taps fall
between pixels and some outside the image) and a random mask. Timed, as the median of ``--repeats`` runs after one
warm-up run each:

* ``tv fwd`` / ``tv f+b``: ``torchvision.ops.deform_conv2d`` forward (no grad), and forward + backward;
* ``ours fwd`` / ``ours f+b``: ``deblurzoo.ops.deform_conv2d`` with the 'auto' backend (on CPU: 'pytorch');
* ``conv fwd`` / ``conv f+b``: ``F.conv2d`` of the same input, weight and bias (the floor: no sampling at all).

Backward is ``out.backward(g)`` for a fixed random ``g``, with input, offset, mask, weight and bias all requiring grad
(the plain convolution: input, weight and bias). The six measurements of a configuration are interleaved run by run,
so that a change in machine load hits them alike. Columns of the table, all times in ms:

* ``tv f+b / ours``: how many times faster our forward + backward is than torchvision's (the goal: >= 5);
* ``ours / conv fwd``: our forward time over a plain convolution's (the goal: <= 3);
* ``ours / conv f+b``: the same for forward + backward;
* ``max rel diff``: the largest norm-wise relative difference ||ours - tv|| / ||tv|| over the output and the five
  gradients of the last timed run (listed per tensor under the table; the goal: <= 1e-5).

torchvision's CPU backward is slow (seconds at 1x64x180x320), so a full run takes a few minutes. Timings on a shared
machine are only meaningful when nothing else runs: the load average is printed before and after.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deblurzoo.data.output_guard import check_report_targets, write_report  # noqa: E402
from deblurzoo.ops import deform_conv2d, get_backend, use_backend  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None

TENSORS = ('out', 'input', 'offset', 'mask', 'weight', 'bias')


def parse_shape(text):
    """'1,64,180,320' or '1x64x180x320' -> (b, c, h, w), each at least 1; an ``argparse`` type."""
    try:
        shape = tuple(int(v) for v in text.replace('x', ',').split(','))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f'a shape is b,c,h,w (positive integers); got {text!r}')
    return shape


def make_inputs(shape, offset_groups, c_out, seed=0):
    b, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    return dict(
        input=torch.randn(b, c, h, w, generator=gen),
        offset=torch.randn(b, 2 * offset_groups * 9, h, w, generator=gen) * 2,
        mask=torch.rand(b, offset_groups * 9, h, w, generator=gen),
        weight=torch.randn(c_out, c, 3, 3, generator=gen) / (3 * c**0.5),
        bias=torch.randn(c_out, generator=gen) * 0.1,
    ), torch.randn(b, c_out, h, w, generator=gen)


def run_deform(fn, inputs, grad_out=None):
    """One forward (no grad when ``grad_out`` is None) or forward + backward; returns the output and gradients."""
    if grad_out is None:
        with torch.no_grad():
            return fn(**inputs), None
    leaves = {k: v.detach().requires_grad_() for k, v in inputs.items()}
    out = fn(**leaves)
    out.backward(grad_out)
    return out.detach(), {k: v.grad for k, v in leaves.items()}


def tv_fn(input, offset, mask, weight, bias):
    return torchvision.ops.deform_conv2d(input, offset, weight, bias, padding=(1, 1), mask=mask)


def ours_fn(input, offset, mask, weight, bias):
    return deform_conv2d(input, offset, weight, bias, padding=(1, 1), mask=mask)


def conv_fn(input, offset, mask, weight, bias):
    return F.conv2d(input, weight, bias, padding=1)


def conv_run(inputs, grad_out=None):
    sub = {k: inputs[k] for k in ('input', 'weight', 'bias')}
    if grad_out is None:
        with torch.no_grad():
            return conv_fn(offset=None, mask=None, **sub), None
    leaves = {k: v.detach().requires_grad_() for k, v in sub.items()}
    out = conv_fn(offset=None, mask=None, **leaves)
    out.backward(grad_out)
    return out.detach(), {k: v.grad for k, v in leaves.items()}


def timed(calls, repeats, progress):
    """Median wall times (s) of ``repeats`` runs of every callable in ``calls`` (a dict) after one warm-up run each,
    the runs of the different callables interleaved (so that they see the same machine load); returns the medians and
    the last result of every callable."""
    results = {}
    for name, call in calls.items():
        results[name] = call()
        progress()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            results[name] = call()
            times[name].append(time.perf_counter() - start)
            progress()
    return {name: statistics.median(t) for name, t in times.items()}, results


def rel_diff(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shapes', nargs='+', type=parse_shape, default=[(1, 64, 180, 320), (4, 64, 64, 64)],
                        help='input shapes b,c,h,w (default: 1,64,180,320 4,64,64,64)')
    parser.add_argument('--offset-groups', nargs='+', type=int, default=[1, 8], help='default: 1 8')
    parser.add_argument('--out', type=int, default=None, help='output channels (default: as many as the input)')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs per measurement (default: 3)')
    parser.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument('--json', default=None, help='also write the numbers to this JSON file')
    args = parser.parse_args(argv)
    try:
        check_report_targets([args.json], '--json')
    except ValueError as err:
        parser.error(str(err))
    if min(args.offset_groups + [args.repeats] + [v for v in (args.out, args.threads) if v is not None]) < 1:
        parser.error('--offset-groups, --repeats, --out and --threads must be at least 1')
    bad = [f'{og} does not divide {c} channels' for b, c, h, w in args.shapes for og in args.offset_groups if c % og]
    if bad:
        parser.error(f"--offset-groups: {'; '.join(bad)}")
    if args.threads:
        torch.set_num_threads(args.threads)

    with use_backend('auto'):
        backend = get_backend(resolve=True, device='cpu')
    configs = [(shape, og) for shape in args.shapes for og in args.offset_groups]
    steps = len(configs) * 6 * (args.repeats + 1)
    bar = tqdm(total=steps, desc='bench_deform', file=sys.stderr) if tqdm is not None else None
    done = [0]

    def progress():
        done[0] += 1
        if bar is not None:
            bar.update()
        elif done[0] % (args.repeats + 1) == 0:
            print(f'  {done[0]}/{steps} measurements', file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    rows = []
    for shape, og in configs:
        c_out = args.out or shape[1]
        inputs, grad_out = make_inputs(shape, og, c_out)
        if bar is not None:
            bar.set_postfix_str(f"{'x'.join(map(str, shape))} og={og}")
        row = dict(shape=list(shape), offset_groups=og, c_out=c_out)
        calls = {
            'conv_fwd': lambda: conv_run(inputs),
            'conv_fb': lambda: conv_run(inputs, grad_out),
            'tv_fwd': lambda: run_deform(tv_fn, inputs),
            'tv_fb': lambda: run_deform(tv_fn, inputs, grad_out),
            'ours_fwd': lambda: run_deform(ours_fn, inputs),
            'ours_fb': lambda: run_deform(ours_fn, inputs, grad_out),
        }
        with use_backend('auto'):
            medians, results = timed(calls, args.repeats, progress)
        row.update(medians)
        out_tv, grads_tv = results['tv_fb']
        out, grads = results['ours_fb']
        diffs = {'out': rel_diff(out, out_tv)}
        diffs.update({k: rel_diff(grads[k], grads_tv[k]) for k in TENSORS[1:]})
        row['rel_diff'] = diffs
        row['tv_fb_over_ours_fb'] = row['tv_fb'] / row['ours_fb']
        row['ours_fwd_over_conv_fwd'] = row['ours_fwd'] / row['conv_fwd']
        row['ours_fb_over_conv_fb'] = row['ours_fb'] / row['conv_fb']
        rows.append(row)
    if bar is not None:
        bar.close()
    load_after = os.getloadavg()

    print(f'deblurzoo deform_conv2d (backend auto -> {backend!r}) vs torchvision {torchvision.__version__}, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}; times in ms')
    print(f'load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min; {os.cpu_count()} CPUs)')
    header = (f"{'shape':>14} {'og':>3} {'conv fwd':>9} {'conv f+b':>9} {'tv fwd':>8} {'tv f+b':>8} {'ours fwd':>9} "
              f"{'ours f+b':>9} {'tv f+b / ours':>14} {'ours / conv fwd':>16} {'ours / conv f+b':>16} "
              f"{'max rel diff':>13}")
    print(header)
    print('-' * len(header))
    for r in rows:
        print(f"{'x'.join(map(str, r['shape'])):>14} {r['offset_groups']:>3} {1e3 * r['conv_fwd']:>9.1f} "
              f"{1e3 * r['conv_fb']:>9.1f} {1e3 * r['tv_fwd']:>8.1f} {1e3 * r['tv_fb']:>8.1f} "
              f"{1e3 * r['ours_fwd']:>9.1f} {1e3 * r['ours_fb']:>9.1f} {r['tv_fb_over_ours_fb']:>14.2f} "
              f"{r['ours_fwd_over_conv_fwd']:>16.2f} {r['ours_fb_over_conv_fb']:>16.2f} "
              f"{max(r['rel_diff'].values()):>13.1e}")
    print('\nnorm-wise relative difference ||ours - tv|| / ||tv|| per tensor:')
    for r in rows:
        diffs = ', '.join(f'{k} {r["rel_diff"][k]:.1e}' for k in TENSORS)
        print(f"  {'x'.join(map(str, r['shape']))} og={r['offset_groups']}: {diffs}")
    if args.json:
        write_report(args.json, json.dumps(dict(
            backend=backend, torch=torch.__version__, torchvision=torchvision.__version__,
            threads=torch.get_num_threads(), repeats=args.repeats, load_before=load_before, load_after=load_after,
            results=rows), indent=2))
        print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
