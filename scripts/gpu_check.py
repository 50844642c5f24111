"""The GPU acceptance run: every CUDA path of deblurzoo, measured in one command that fits in 8 minutes.

    bash scripts/gpu_check.sh --out "$OUT/gpu_report"              # on the GPU machine (README: "Checking on a GPU")
    python scripts/gpu_check.py --device cpu --quick --out /tmp/q   # the same code paths at tiny sizes, on CPU
    python scripts/gpu_check.py --vendor .gpu_site                  # copy BasicSR here, for a machine without it

Sections, in this order, each under its own time limit (``--limits``; a section that runs out keeps what it
measured and says so), the report rewritten (atomically) after every measurement, so a run stopped from outside
still leaves ``<out>.md`` and ``<out>.json`` with everything done so far:

1. ``env``: GPU, driver, CUDA, cuDNN, Python, torch, torchvision, BasicSR, deformable-conv backends, load;
2. ``precision``: every registered arch at its paper size (default arguments) on a 256x256 input (a clip for video
   archs), forward and backward in eval mode in float32 and under bf16 / fp16 autocast: finite outputs and gradients,
   and their norm-wise relative difference from float32 (backward of ``(r * g).sum()`` for a fixed random ``g``, ``r``
   the output minus the input frame it restores: archs whose last layer starts at zero return their input exactly);
3. ``latency``: 1280x720 inference (batch 1, ``inference_mode``), median of ``--repeats`` after a warm-up, and peak
   memory, in float32, fp16 autocast (what ``deblurzoo-infer --fp16`` runs), fp16 + channels_last and fp16 +
   ``torch.compile``, beside the papers' stated times (``scripts/benchmark.py``'s ``PAPER``);
4. ``deform``: the deformable convolution's backends on the device against each other and against torchvision in
   float64: output and all five gradients (input, offset, mask, weight, bias), and their speed;
5. ``train``: each ``options/demo/train_*.yml`` built as in training with ``train.amp: bf16``, overfitting one batch of
   the option's own dataset on a generated GoPro-layout set (with flows), read through BasicSR's loader with
   ``prefetch_mode: cuda`` and pinned memory on CUDA (``cpu`` elsewhere): the loss must fall; it/s, loader samples/s;
6. ``torchrun``: ``torchrun --nproc_per_node=1 deblurzoo/train.py --launcher pytorch`` for a few iterations (NCCL on
   CUDA, gloo on CPU).

``--quick`` uses the test suite's tiny constructor arguments (``tests/test_registry.py``'s ``TINY``) and tiny inputs,
and compiles with the 'eager' backend (no C++ compiler needed); a test runs ``--device cpu --quick``.
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SECTIONS = ('env', 'precision', 'latency', 'deform', 'train', 'torchrun')
LIMITS = {'env': 20, 'precision': 70, 'latency': 150, 'deform': 30, 'train': 100, 'torchrun': 60}  # seconds


VENDOR_MARK = '.gpu_check_vendor.json'  # in --vendor's folder: the copies it made, the only ones it ever replaces
VENDORED = ('basicsr', 'distutils')


def vendor(folder):
    """Copy BasicSR (pure Python) into ``folder`` for a machine whose Python has torch but no BasicSR, with this
    Python's ``distutils`` (BasicSR imports ``distutils.version``, which Python 3.12 no longer ships). A copy is made
    beside its target and swapped in; a copy already there is replaced only where ``folder``'s :data:`VENDOR_MARK`
    says this made it: a ``basicsr`` or ``distutils`` folder of the user's is refused (exit 2), never removed."""
    import distutils  # noqa: F401  (setuptools may serve its own copy)
    import importlib.util
    sys.path.insert(0, REPO)
    from deblurzoo.data.safe_io import write_text_atomic  # basicsr is imported here, patched by deblurzoo first
    mark = osp.join(folder, VENDOR_MARK)
    try:
        with open(mark, encoding='utf-8') as f:
            ours = set(json.load(f))
    except (OSError, ValueError, TypeError):
        ours = set()
    theirs = [osp.join(folder, name) for name in VENDORED if osp.lexists(osp.join(folder, name)) and name not in ours]
    if theirs or (osp.lexists(folder) and not osp.isdir(folder)):
        print(f"--vendor {folder}: {', '.join(theirs) or folder} not made by --vendor (no {VENDOR_MARK} lists it); "
              'not replacing it: choose another folder', file=sys.stderr)
        return 2
    os.makedirs(folder, exist_ok=True)
    for name in VENDORED:
        spec = importlib.util.find_spec(name)
        source = osp.dirname(spec.origin) if spec.origin else spec.submodule_search_locations[0]
        target = osp.join(folder, name)
        scratch = tempfile.mkdtemp(prefix=f'.{name}.', dir=folder)
        try:
            shutil.copytree(source, osp.join(scratch, name),
                            ignore=shutil.ignore_patterns('__pycache__', '*.so', 'tests'))
            ours.add(name)
            write_text_atomic(mark, json.dumps(sorted(ours)))
            if osp.lexists(target):  # our earlier copy: moved aside into the scratch folder, removed with it
                os.rename(target, osp.join(scratch, 'old'))
            os.rename(osp.join(scratch, name), target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(f'copied {source} -> {target}')
    return 0


# ------------------------------------------------------------------------------------------------------ report


class Report:
    """Sections of results, written to ``<out>.json`` and ``<out>.md`` (atomically) on every :meth:`save`."""

    def __init__(self, out, args):
        self.out = out
        self.data = {'args': vars(args), 'started': time.strftime('%Y-%m-%d %H:%M:%S %Z'), 'sections': {}}

    def section(self, name):
        return self.data['sections'].setdefault(name, {'status': 'running', 'rows': []})

    def save(self):
        from deblurzoo.data.output_guard import write_report
        write_report(self.out + '.json', json.dumps(self.data, indent=1, default=str))
        write_report(self.out + '.md', markdown(self.data))


def _cell(value):
    if isinstance(value, float):
        return f'{value:.3g}'
    return '—' if value is None else str(value).replace('|', '/').replace('\n', ' ')


def markdown(data):
    lines = ['# deblurzoo GPU check', '', f"Started {data['started']}; command: `python scripts/gpu_check.py "
             f"{' '.join(data['args'].get('argv') or [])}`. Written by `scripts/gpu_check.py` (see its docstring for "
             'what each section measures).']
    for name, sec in data['sections'].items():
        lines += ['', f'## {name}', '', f"Status: {sec['status']}" + (f" ({sec['seconds']:.0f} s)" if 'seconds' in sec
                                                                     else '')]
        if sec.get('error'):
            lines += ['', '```', sec['error'][-1500:], '```']
        rows = sec['rows']
        if rows:
            keys = list(dict.fromkeys(k for row in rows for k in row))
            lines += ['', '| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
            lines += ['| ' + ' | '.join(_cell(row.get(k)) for k in keys) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


# -------------------------------------------------------------------------------------------------- time limits


class TimeLimit(Exception):
    pass


_ends = []  # absolute deadlines of the nested time limits


def _arm():
    signal.setitimer(signal.ITIMER_REAL, max(min(_ends) - time.monotonic(), 1e-3) if _ends else 0)


@contextlib.contextmanager
def time_limit(seconds):
    """Raise :class:`TimeLimit` in this (main) thread after ``seconds`` (nested limits: the nearest end wins)."""

    def handler(signum, frame):
        raise TimeLimit(f'time limit of {seconds:.0f} s reached')

    previous = signal.signal(signal.SIGALRM, handler)
    _ends.append(time.monotonic() + seconds)
    _arm()
    try:
        yield
    finally:
        _ends.pop()
        _arm()
        signal.signal(signal.SIGALRM, previous)


def _expired():
    return bool(_ends) and time.monotonic() >= min(_ends) - 0.05


def failure(err):
    """A row's error text for ``err``; a time limit that a library wrapped (torch.compile does) raises again."""
    if _expired():
        raise TimeLimit('time limit reached') from err
    return f'{type(err).__name__}: {err}'[:300]


# ------------------------------------------------------------------------------------------------------ helpers


def rel_diff(a, b):
    """Norm-wise relative difference ||a - b|| / ||b|| (in float64); None when either is missing."""
    import torch
    if a is None or b is None:
        return None
    a, b = a.detach().double(), b.detach().double()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-30))


def sync(device):
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    """Median seconds of ``repeats`` calls of ``fn`` (synchronised)."""
    seconds = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def arch_kwargs(arch, quick):
    """Constructor arguments: the paper's (defaults), or with ``quick`` the test suite's tiny ones."""
    import bench_data
    return bench_data.tiny_kwargs(arch) if quick else {}


# ----------------------------------------------------------------------------------------------------- sections


def section_env(ctx, rows):
    import basicsr
    import torch
    import torchvision
    from deblurzoo import ops
    row = dict(python=platform.python_version(), torch=torch.__version__, torchvision=torchvision.__version__,
               basicsr=basicsr.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
               dcn_backends=', '.join(ops.available_backends()), cpus=os.cpu_count(),
               load_1min=round(os.getloadavg()[0], 2))
    if ctx.device.type == 'cuda':
        props = torch.cuda.get_device_properties(ctx.device)
        row.update(gpu=props.name, capability=f'{props.major}.{props.minor}', memory_gb=round(props.total_memory / 1e9))
        try:
            smi = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                                 capture_output=True, text=True, timeout=15)
            row['driver'] = smi.stdout.strip() or smi.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            row['driver'] = f'nvidia-smi: {err}'
    try:
        row['commit'] = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True,
                                       text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        row['commit'] = None
    rows.append(row)


def section_precision(ctx, rows):
    import torch
    import model_cost
    from deblurzoo.models.deblur_model import split_output
    side = 32 if ctx.quick else 256
    for arch in ctx.archs:
        net = model_cost.build(arch, arch_kwargs(arch, ctx.quick)).to(ctx.device)
        params = [p for p in net.parameters() if p.requires_grad]
        torch.manual_seed(1)
        x, _ = model_cost.make_input(net, side, side, device=ctx.device)
        ref = None
        for name, dtype in (('fp32', None), ('bf16', torch.bfloat16), ('fp16', torch.float16)):
            row = dict(arch=arch, dtype=name, input='x'.join(map(str, x.shape)))
            try:
                with torch.autocast(ctx.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    out = split_output(net(x))[0].float()
                out = out - (x if out.shape == x.shape else x[:, x.shape[1] // 2])  # the residual (see the doc)
                g = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(ctx.device)
                grads = torch.autograd.grad((out * g).sum(), params, allow_unused=True)
                flat = torch.cat([gr.flatten().float() for gr in grads if gr is not None])
                row.update(finite_out=bool(torch.isfinite(out).all()), finite_grad=bool(torch.isfinite(flat).all()))
                if ref is None:
                    ref = (out.detach(), flat)
                else:
                    row.update(out_rel_diff=rel_diff(out, ref[0]), grad_rel_diff=rel_diff(flat, ref[1]))
            except TimeLimit:
                raise
            except Exception as err:  # noqa: BLE001 (a failing arch or dtype is reported, the others go on)
                row['error'] = failure(err)
            rows.append(row)
            ctx.save()
        del net, x, ref
        if ctx.device.type == 'cuda':
            torch.cuda.empty_cache()


def section_latency(ctx, rows):
    import torch
    import benchmark
    import model_cost
    from deblurzoo.models.deblur_model import split_output
    from deblurzoo.inference.test_time import measure_peak_memory
    h, w = (36, 64) if ctx.quick else (720, 1280)
    variants = (('fp32', None, False, False), ('fp16', torch.float16, False, False),
                ('fp16+channels_last', torch.float16, True, False), ('fp16+compile', torch.float16, False, True))
    for name, dtype, channels_last, compiled in variants:  # every arch's plain variants before any compilation
        for arch in ctx.archs:
            paper = (benchmark.PAPER.get(arch) or {}).get('runtime')
            row = dict(arch=arch, variant=name, size=f'{w}x{h}')
            net = model_cost.build(arch, arch_kwargs(arch, ctx.quick)).to(ctx.device)
            x, per = model_cost.make_input(net, h, w, device=ctx.device)
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
            try:
                if compiled:
                    net.compile(backend=ctx.compile_backend)

                def run():
                    with torch.inference_mode(), torch.autocast(ctx.device.type, dtype=dtype or torch.float32,
                                                                enabled=dtype is not None):
                        return split_output(net(x))[0]

                with time_limit(ctx.item_limit):
                    start = time.perf_counter()
                    if ctx.device.type == 'cuda':
                        peak, out = measure_peak_memory(run)  # the warm-up (and the compilation)
                    else:  # CPU peaks are followed op by op under a dispatch mode, which autocast does not enter
                        peak, out = None, run()
                    row['first_call_s'] = time.perf_counter() - start
                    row['finite'] = bool(torch.isfinite(out).all())
                    del out
                    row['median_s_per_frame'] = timed(run, ctx.device, ctx.repeats) / per
                row['peak_mem_gb'] = None if peak is None else peak / 1e9
            except TimeLimit:
                if _expired():
                    raise
                row['error'] = f'over the {ctx.item_limit:.0f} s limit of one measurement'
            except Exception as err:  # noqa: BLE001
                row['error'] = failure(err)
            row['paper'] = paper if name == 'fp32' else None
            rows.append(row)
            ctx.save()
            del net, x
            if ctx.device.type == 'cuda':
                torch.cuda.empty_cache()


def section_deform(ctx, rows):
    import torch
    from deblurzoo import ops
    b, c, h, w = (1, 8, 12, 16) if ctx.quick else (2, 64, 180, 320)
    for og in (1, 8):
        gen = torch.Generator().manual_seed(og)
        case = dict(input=torch.randn(b, c, h, w, generator=gen),
                    offset=2 * torch.randn(b, 18 * og, h, w, generator=gen),
                    mask=torch.rand(b, 9 * og, h, w, generator=gen),
                    weight=torch.randn(c, c, 3, 3, generator=gen) / 24, bias=torch.randn(c, generator=gen))
        case = {k: v.to(ctx.device) for k, v in case.items()}
        grad_out = torch.randn(b, c, h, w, generator=gen).to(ctx.device)

        def run(backend, dtype):
            args = {k: v.detach().to(dtype).requires_grad_() for k, v in case.items()}
            with ops.use_backend(backend):
                out = ops.deform_conv2d(args['input'], args['offset'], args['weight'], args['bias'], padding=1,
                                        mask=args['mask'])
            grads = torch.autograd.grad(out, list(args.values()), grad_out.to(dtype))
            return out, dict(zip(args, grads))

        truth = run('torchvision', torch.float64)
        results = {name: run(name, torch.float32) for name in ops.available_backends()}
        for name, (out, grads) in results.items():
            row = dict(backend=name, shape=f'{b}x{c}x{h}x{w}', offset_groups=og, vs='torchvision fp64',
                       out=rel_diff(out, truth[0]), **{k: rel_diff(v, truth[1][k]) for k, v in grads.items()})
            row['fwd_bwd_ms'] = 1e3 * timed(lambda: run(name, torch.float32), ctx.device, ctx.repeats)
            rows.append(row)
            if name != 'torchvision':
                out_tv, grads_tv = results['torchvision']
                rows.append(dict(backend=name, shape=row['shape'], offset_groups=og, vs='torchvision fp32',
                                 out=rel_diff(out, out_tv), **{k: rel_diff(v, grads_tv[k]) for k, v in grads.items()}))
            ctx.save()


def _train_opt(path, root, data, quick):
    """``path``'s options for one training process (``bench_data.training_options``), pointed at ``data``, with
    ``train.amp: bf16``."""
    import bench_data
    opt = bench_data.training_options(path, root, 0 if quick else 1, tiny=quick)
    for phase, ds in opt['datasets'].items():
        ds['dataroot'] = data if ds['type'] == 'GoProDataset' else osp.join(data, 'train' if phase == 'train' else
                                                                            'test')
    opt['datasets']['train']['num_worker_per_gpu'] = 0
    opt['train']['amp'] = 'bf16'
    if 'pretrain_iter' in opt['train']:
        opt['train']['pretrain_iter'] = 3 if quick else 20  # both phases of SAPHNet's schedule
    return opt


def section_train(ctx, rows):
    import glob

    import bench_data
    import torch
    from basicsr.archs import build_network
    from basicsr.models import build_model
    steps = 6 if ctx.quick else 60
    for path in sorted(glob.glob(osp.join(REPO, 'options', 'demo', 'train_*.yml'))):
        if ctx.options and osp.basename(path) not in ctx.options:
            continue
        row = dict(option=osp.relpath(path, REPO))
        try:
            opt = _train_opt(path, ctx.tmp, ctx.data, ctx.quick)
            if opt.get('network_stage1'):  # a two-stage model: stage 1's weights from a file (here: untrained)
                stage1 = osp.join(ctx.tmp, f"{opt['name']}_stage1.pth")
                torch.save({'params': build_network(dict(opt['network_stage1'])).state_dict()}, stage1)
                opt['path']['pretrain_network_stage1'] = stage1
            model = build_model(opt)
            # the batch through BasicSR's loader as the trainer builds it: prefetch_mode cuda (pinned memory, a side
            # stream) on a GPU, cpu (a background thread) elsewhere
            prefetch = 'cuda' if ctx.device.type == 'cuda' else 'cpu'
            workers = 0 if ctx.quick else 2
            _, rate, batch = bench_data.loader_rate(opt['datasets']['train'], workers, prefetch, 3, ctx.device)
            row.update(arch=opt['network_g']['type'], amp=opt['train']['amp'], prefetch=prefetch,
                       loader_samples_per_s=rate, batch='x'.join(map(str, batch['lq'].shape)))
            losses, start = [], None
            for it in range(1, steps + 1):
                if it == min(6, steps // 2 + 1):
                    sync(ctx.device)
                    start, start_it = time.perf_counter(), it
                model.feed_data(batch)
                model.optimize_parameters(it)
                losses.append(float(sum(v for k, v in model.log_dict.items() if k.startswith('l_pix'))))
            sync(ctx.device)
            row['it_per_s'] = (steps + 1 - start_it) / (time.perf_counter() - start)
            head, tail = statistics.mean(losses[:2]), statistics.mean(losses[-2:])
            row.update(first_loss=head, last_loss=tail, finite=all(map(lambda v: v == v and abs(v) != float('inf'),
                                                                         losses)), loss_falls=tail < head)
            del model
        except TimeLimit:
            raise
        except Exception as err:  # noqa: BLE001
            row['error'] = failure(err)
            traceback.print_exc()
        rows.append(row)
        ctx.save()
        if ctx.device.type == 'cuda':
            torch.cuda.empty_cache()


def section_torchrun(ctx, rows):
    import yaml
    root = osp.join(ctx.tmp, 'torchrun')
    os.makedirs(osp.join(root, 'deblurzoo'), exist_ok=True)
    shutil.copy(osp.join(REPO, 'deblurzoo', 'train.py'), osp.join(root, 'deblurzoo', 'train.py'))
    opt = _train_opt(osp.join(REPO, 'options', 'demo', 'train_sarn_demo.yml'), root, ctx.data, ctx.quick)
    for key in ('is_train', 'dist', 'rank', 'world_size', 'auto_resume'):
        opt.pop(key)
    opt['path'] = {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None}
    opt['num_gpu'] = 'auto'
    opt['datasets'].pop('val', None)
    opt.pop('val', None)
    opt['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2)
    opt['train'].update(total_iter=4)
    opt['train']['scheduler']['total_iter'] = 4
    opt['logger'].update(print_freq=1, save_checkpoint_freq=4, use_tb_logger=False)
    with open(osp.join(root, 'opt.yml'), 'w') as f:
        yaml.safe_dump(opt, f)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=1', f'--master_port={port}',
           'deblurzoo/train.py', '-opt', 'opt.yml', '--launcher', 'pytorch']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + sys.path[1:]))
    if ctx.device.type == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    start = time.perf_counter()
    row = dict(command=' '.join(cmd[2:]), backend='nccl' if ctx.device.type == 'cuda' else 'gloo')
    try:
        run = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env,
                             timeout=max(5, min(_ends) - time.monotonic() - 2))
        row.update(returncode=run.returncode, tail=(run.stderr or run.stdout)[-400:] if run.returncode else None)
    except subprocess.TimeoutExpired as err:
        row.update(returncode='timed out', tail=(err.stderr or err.stdout or b'')[-400:].decode(errors='replace'))
    row.update(seconds=time.perf_counter() - start,
               reached_iter_4=re.search(r'iter:\s*4\b', glob_logs(osp.join(root, 'experiments'))) is not None)
    rows.append(row)


def glob_logs(folder):
    import glob
    return '\n'.join(open(p).read() for p in glob.glob(osp.join(folder, '*', 'train_*.log')))


# --------------------------------------------------------------------------------------------------------- main


class Context:
    pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=osp.join(REPO, 'docs', 'gpu_report'), help='report path without extension')
    parser.add_argument('--device', default='cuda', help="'cuda' (default) or 'cpu'")
    parser.add_argument('--quick', action='store_true', help='tiny nets and inputs (the test mode)')
    parser.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument('--archs', nargs='+', help='registered arch names (default: all)')
    parser.add_argument('--options', nargs='+', help='demo option files to train (names; default: all)')
    parser.add_argument('--limits', nargs='+', default=[], metavar='SECTION=SECONDS',
                        help=f'per-section time limits (default: {LIMITS})')
    parser.add_argument('--repeats', type=int, help='timed repeats (default: 3, quick: 1)')
    parser.add_argument('--vendor', metavar='FOLDER', help='only copy BasicSR into FOLDER and exit')
    args = parser.parse_args(argv)
    if args.vendor:
        return vendor(args.vendor)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    sys.path[:0] = [REPO, osp.join(REPO, 'scripts')]
    import torch
    import benchmark  # noqa: F401  (imports deblurzoo: registers everything)
    from deblurzoo.data.output_guard import check_report_targets
    try:
        check_report_targets([args.out + '.json', args.out + '.md'], '--out')
    except ValueError as err:
        parser.error(str(err))
    try:
        device = torch.device(args.device)
    except RuntimeError as err:  # torch.device's message lists the device types
        parser.error(f'--device {args.device}: {err}')
    if args.repeats is not None and args.repeats < 1:
        parser.error('--repeats must be at least 1')

    limits = dict(LIMITS)
    for item in args.limits:
        name, _, value = item.partition('=')
        if name not in LIMITS:
            parser.error(f'--limits {item}: unknown section {name!r} (sections: {", ".join(SECTIONS)})')
        try:
            limits[name] = float(value)
        except ValueError:
            limits[name] = float('nan')
        if not limits[name] > 0:
            parser.error(f'--limits {item}: write SECTION=SECONDS, seconds a positive number')
    ctx = Context()
    ctx.device, ctx.quick = device, args.quick
    if ctx.device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch sees no CUDA device (use --device cpu --quick for the CPU run)')
    ctx.archs = args.archs or benchmark.registered_archs()
    ctx.options = args.options
    ctx.repeats = args.repeats or (1 if args.quick else 3)
    ctx.compile_backend = 'eager' if args.quick else 'inductor'
    ctx.item_limit = 60 if not args.quick else 30
    report = Report(args.out, args)
    ctx.save = report.save
    with tempfile.TemporaryDirectory(prefix='gpu_check_') as tmp:
        ctx.tmp = tmp
        sys.path.insert(0, osp.join(REPO, 'tests'))
        import data_factory  # the test suite's generated GoPro-layout set (panning textures; flows)
        size = (48, 64) if args.quick else (128, 160)
        for split in ('train', 'test'):
            data_factory.make_gopro_tree(osp.join(tmp, 'data'), split=split, frames=6, size=size, with_flow=True)
        ctx.data = osp.join(tmp, 'data')
        for name in args.sections:
            sec = report.section(name)
            start = time.perf_counter()
            print(f'[{time.strftime("%H:%M:%S")}] {name} (limit {limits[name]:.0f} s)', flush=True)
            try:
                with time_limit(limits[name]):
                    globals()[f'section_{name}'](ctx, sec['rows'])
                sec['status'] = 'done'
            except TimeLimit:
                sec['status'] = f"stopped at its time limit ({limits[name]:.0f} s) after {len(sec['rows'])} rows"
            except Exception:  # noqa: BLE001 (the next sections still run)
                sec['status'] = 'failed'
                sec['error'] = traceback.format_exc()
            sec['seconds'] = time.perf_counter() - start
            report.save()
    print(f'wrote {args.out}.md and {args.out}.json')


if __name__ == '__main__':
    sys.exit(main())
