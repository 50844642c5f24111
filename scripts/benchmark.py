"""The paper-table benchmark: cost, speed and memory of every registered arch beside what its paper states.

    python scripts/benchmark.py                                   # every arch at its paper size -> results/benchmark.*
    python scripts/benchmark.py --archs SVDN SARN --repeats 5 --out results/bench_small
    python scripts/benchmark.py --archs SVDN --kwargs 'SVDN={"num_feat": 32}' --sizes 256x256 640x360
    python scripts/benchmark.py --archs --checkpoint SVDN=experiments/svdn/models/net_g_latest.pth \\
        --data datasets/demo/test/chelsea/blur datasets/demo/test/chelsea/sharp   # PSNR/SSIM only

For every arch registered by deblurzoo (or those ``--archs`` names), built with its default (the paper's)
constructor arguments unless ``--kwargs NAME='{json}'`` overrides them:

- parameters and float32 size (1 MB = 1e6 bytes, as papers quote it);
- multiply-accumulates (MACs) at every ``--sizes`` size (WIDTHxHEIGHT; default 256x256 and 1280x720), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC) over one eval forward with deblurzoo's 'pytorch'
  deformable-conv backend, on the 'meta' device when the arch allows it (shapes only, no arithmetic: instant even at
  720p), else on ``--device``. The counter sees convolutions and matrix products only: every other arithmetic op the
  forward ran (activations, elementwise sums and products, softmax, norms, bilinear sampling's weights...) is listed
  per arch as "not counted", with the elements it wrote, so the reader knows what the MACs leave out;
- at the last size (720p by default), on ``--device`` (a GPU when there is one, else the CPU): latency, the median of
  ``--repeats`` timed eval forwards under ``torch.inference_mode()`` after a warm-up (CUDA synchronised), and peak
  memory of that forward beyond its input and weights (``deblurzoo.inference.test_time.measure_peak_memory``: CUDA's
  ``max_memory_allocated``; on CPU the tensors alive at the peak, followed op by op -- a lower bound, kernels' scratch
  buffers are not seen; this measured pass is the warm-up). Timings use the default deformable-conv backend;
- FLOP-efficiency: the arch's MACs per second divided by those of a plain stack of 64->64 3x3 convs with ReLU, as many
  as give the arch's MACs (at least one), on the same input size and device, timed the same way in the same run:
  1.0 means the arch runs as fast per MAC as the most ordinary conv net does on this machine;
- the paper's stated figures (``PAPER`` below, with the table each comes from).

Video archs get a clip, by their declared frame mode (``deblurzoo/archs/protocol.py``): window archs their
``num_frame`` frames, restoring the centre one; sequence (recurrent) archs ``--frames`` frames. MACs and latency are
then per restored frame. Archs with a learned sampler (e.g. SAPHNet) are counted with uniform and greedy (top-N, the
eval default) sampling; the table shows the eval default.

Each arch runs in its own subprocess (``--no-isolate`` runs them in this process): memory stays separate, the
worker's peak RSS (``ru_maxrss``, everything it did) is a secondary memory figure, and an arch that crashes or runs out
of memory is reported as such while the others go on.

``--checkpoint MODEL[=CKPT]`` (repeatable; MODEL an arch name or a test option file, CKPT defaulting to the option
file's ``pretrain_network_g``) with ``--data LQ_DIR GT_DIR`` (paired images, matched by their path relative to each
folder, searched recursively) adds PSNR and SSIM (``basicsr.metrics``, RGB, no border crop, on 8-bit-rounded outputs)
averaged over the images. Image nets restore each image; video nets each folder's frames in name order as a sequence.

Writes ``--out``.md (tables and notes) and ``--out``.json (every number, raw). Before measuring it checks that they
can be written and replace no file of the user's: an existing pair is replaced only where ``OUT.json`` holds JSON (an
earlier report), and neither may be a checkpoint or option file it reads (``output_guard.check_report_targets``).
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import model_cost  # noqa: E402  (scripts/model_cost.py: the counting code; imports deblurzoo)
from basicsr.utils.registry import ARCH_REGISTRY  # noqa: E402
from deblurzoo.archs.protocol import arch_info  # noqa: E402
from deblurzoo.data.output_guard import check_report_targets, write_report  # noqa: E402
from deblurzoo.inference.test_time import measure_peak_memory  # noqa: E402

DEFAULT_SIZES = ('256x256', '1280x720')
# what some uncounted ops are, for the notes
OP_NOTES = {
    '_embedding_bag_forward_only': "the 'pytorch' deformable backend's bilinear sampling (4 weighted corners)",
    '_embedding_bag': "the 'pytorch' deformable backend's bilinear sampling (4 weighted corners)",
    '_safe_softmax': 'softmax (attention; the meta count runs attention unfused)',
    'grid_sampler_2d': 'bilinear sampling',
    'upsample_bilinear2d': 'bilinear upsampling',
}
STACK_WIDTH = 64  # the reference conv stack's channels
DASH = '—'

# What each paper states about the archs we built from it: only printed numbers, DASH where the paper gives none.
# Sizes "MB" are the papers' (float32 bytes / 1e6); runtimes with the hardware and resolution the paper names.
PAPER = {
    'SARN': dict(
        paper='000 SARN',
        params=DASH,
        size='11.2 MB',
        macs=DASH,
        runtime='0.02 s ("a single GPU", model not named; resolution not stated)',
        quality='GoPro 31.13 dB / 0.947',
        source='000: Table 1 (GoPro: PSNR, SSIM, time, size), Table 3 (size 11.2 MB with 6 DRMs + SA)'),
    'SARNMulti': dict(
        paper='000 SARN ("Ours-Multi")',
        params=DASH,
        size='11.2 MB',
        macs=DASH,
        runtime='0.02 s (GPU; resolution not stated)',
        quality='DVD 30.60 dB',
        source='000: Table 2 (DVD)'),
    'SARNRecurrent': dict(
        paper='000 SARN ("Ours-Recurrent")',
        params=DASH,
        size='12.4 MB',
        macs=DASH,
        runtime='0.05 s (GPU; resolution not stated)',
        quality='DVD 31.15 dB',
        source='000: Table 2 (DVD)'),
    'SVDN': dict(
        paper='001 SVDN',
        params='"nearly 0.8M"',
        size='3.1 MB',
        macs=DASH,
        runtime='0.01 s per 1280x720 image (GTX 1080Ti)',
        quality='GoPro 29.81 dB / 0.9368 (flow-guided training; 29.57 / 0.9338 without)',
        source='001: Table 1 (GoPro), Sec. 4.3 (720p runtime, 0.8M parameters), Sec. 4 (1080Ti, PyTorch 1.1)'),
    'AtrousNet': dict(
        paper='002 NTIRE 2020 stage 1',
        params=DASH,
        size=DASH,
        macs=DASH,
        runtime='175 ms (Tesla V100, no self-ensemble; resolution not stated, REDS frames are 1280x720)',
        quality=('REDS val 33.93 dB / 0.9352 (self-ensemble 34.19 / 0.9378); REDS test 34.44 / 0.9412; '
                 'GoPro 32.61 / 0.935 (self-ensemble)'),
        source='002: Tables 1, 2 (REDS test, val), 4 (GoPro); Sec. 4 (timing)'),
    'MLFANet': dict(
        paper='002 NTIRE 2020 stage 2',
        params=DASH,
        size=DASH,
        macs=DASH,
        runtime='400 ms for stage 2 (3 frames in; Tesla V100, no self-ensemble; resolution not stated)',
        quality=('REDS val 34.67 dB / 0.9422 (stage 1+2, self-ensemble); REDS test 34.68 / 0.944; '
                 'GoPro 33.23 / 0.944 (self-ensemble)'),
        source='002: Tables 2, 3 (REDS val, test), 4 (GoPro); Sec. 4 (timing)'),
    'SAPHNet': dict(
        paper='003 SAPHNet',
        params='23M',
        size=DASH,
        macs='140 "GFLOPs" (size not stated; DESIGN.md reads it as G MACs at 256x256)',
        runtime='0.79 s per GoPro HD image (1280x720; the GPU named is a Titan Xp)',
        quality=('GoPro 32.76 dB / 0.961; HIDE 31.09 / 0.941; RealBlur-R 36.16 / 0.953; '
                 'RealBlur-J 28.89 / 0.871'),
        source='003: Tables I (GoPro, time), II (HIDE, RealBlur), III (parameters, GFLOPs); Sec. 4.1 (Titan Xp)'),
    'DMPHN': dict(
        paper='003 (baseline; Zhang et al. 2019)',
        params='21.7M (variant not stated)',
        size=DASH,
        macs='78 "GFLOPs" (variant and size not stated)',
        runtime='DMPHN_NU 0.33 s, DMPHN_U (1-2-4-8) 0.3 s; Stack(4)-DMPHN 0.98 s (GoPro HD)',
        quality=('GoPro: DMPHN_NU 31.51 dB, DMPHN_U (1-2-4-8) 30.25, Stack(4)-DMPHN 31.20 / 0.940; '
                 'HIDE 29.09 / 0.924; RealBlur-R 35.70 / 0.948; RealBlur-J 28.42 / 0.860'),
        source='003: Tables I (Stack(4)-DMPHN), II, III, VI (DMPHN_U / DMPHN_NU: uniform / adaptive sampling)'),
}


# ---------------------------------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------------------------------


def registered_archs():
    """The arch names deblurzoo registers (not BasicSR's own), sorted."""
    return sorted(name for name, cls in ARCH_REGISTRY._obj_map.items() if cls.__module__.startswith('deblurzoo'))


def size_name(size):
    h, w = size
    return f'{w}x{h}'


def parse_kwargs(items, archs):
    """``['NAME={json}', ...]`` -> {NAME: dict}; raises ValueError with what is wrong."""
    out = {}
    for item in items or ():
        name, sep, text = item.partition('=')
        name = name.strip()
        if not sep:
            raise ValueError(f"--kwargs {item!r}: write NAME='{{json}}', e.g. SVDN='{{\"num_feat\": 8}}'")
        if name not in archs:
            raise ValueError(f'--kwargs {name}: not among the archs benchmarked ({", ".join(archs)})')
        out[name] = model_cost.arch_kwargs(name, text, f'--kwargs {name}')
    return out


def parse_checkpoint(item):
    """'MODEL=CKPT' or 'MODEL' (an option file naming its checkpoint) -> (model, ckpt or None)."""
    model, _, ckpt = item.partition('=')
    return model, (ckpt or None)


# ---------------------------------------------------------------------------------------------------------------------
# measuring one arch
# ---------------------------------------------------------------------------------------------------------------------


def machine_info(device):
    """CPU model, threads, torch version and the timing device's name."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    except OSError:
        pass
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU ({cpu})'
    return dict(cpu=cpu, cpu_count=os.cpu_count(), threads=torch.get_num_threads(), torch=torch.__version__,
                python=platform.python_version(), platform=platform.platform(), device=str(device), device_name=name)


def conv_stack(num, width=STACK_WIDTH):
    """``num`` 3x3 ``width`` -> ``width`` convs, each followed by ReLU: the reference for FLOP-efficiency."""
    layers = []
    for _ in range(num):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def conv_macs(h, w, width=STACK_WIDTH):
    """MACs of one 3x3 ``width`` -> ``width`` conv at h x w (what FlopCounterMode counts: no bias, no ReLU)."""
    return width * width * 9 * h * w


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_calls(fn, x, repeats, device):
    """Seconds of ``repeats`` calls of ``fn(x)`` (synchronised on CUDA), under inference mode; no warm-up here."""
    seconds = []
    with torch.inference_mode():
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            fn(x)
            _sync(device)
            seconds.append(time.perf_counter() - start)
    return seconds


def _count(arch, kwargs, size, frames, policy, device, meta_net, net):
    """One count at ``size``: on the meta device when the arch runs there, else for real on ``device``."""
    if meta_net is not None:
        try:
            x, restored = model_cost.make_input(meta_net, *size, frames=frames, device='meta')
            return model_cost.count_cost(meta_net, x, policy), restored, 'meta'
        except (RuntimeError, NotImplementedError):  # data-dependent control flow (e.g. .item()) needs real values
            pass
    net.to(device)
    x, restored = model_cost.make_input(net, *size, frames=frames, device=device)
    result = model_cost.count_cost(net, x, policy)
    del x
    return result, restored, str(device)


def measure_arch(arch, kwargs=None, sizes=((256, 256), (720, 1280)), repeats=3, device='cpu', frames=2,
                 latency=True, log=print, save=None):
    """Everything the table reports for one arch (see the module docstring); a dict of plain numbers.

    Args:
        arch (str): Registered arch name.
        kwargs (dict | None): Constructor arguments (None: the paper's defaults).
        sizes (Sequence[tuple]): (h, w) sizes to count MACs at; latency and memory at the last.
        repeats (int): Timed forwards (the median is reported).
        device (str | torch.device): Where to time.
        frames (int): Clip length for recurrent archs.
        latency (bool): Time and measure memory (False: parameters and MACs only).
        log (callable): Progress lines.
        save (callable | None): Called with the partial result after every step (a crash keeps what was done).
    """
    device = torch.device(device)
    res = dict(arch=arch, kwargs=kwargs or {}, paper=PAPER.get(arch))

    def step(name):
        res['step'] = name
        if save is not None:
            save(res)

    step('build')
    net = model_cost.build(arch, kwargs)
    try:
        meta_net = model_cost.build(arch, kwargs, device='meta')
    except (RuntimeError, NotImplementedError):
        meta_net = None
    res['params'] = sum(p.numel() for p in net.parameters())
    res['size_mb'] = 4 * res['params'] / 1e6
    frames_in, restored = model_cost.clip_layout(net, frames)
    res['kind'] = arch_info(net).mode
    res['frames_in'], res['restored_per_forward'] = frames_in, restored
    policies = model_cost.policies(net)
    res['policies'] = [p or 'default' for p in policies]
    res['default_policy'] = 'greedy' if policies != [None] else 'default'
    res['macs'] = {}
    for size in sizes:
        step(f'count {size_name(size)}')
        entry = res['macs'][size_name(size)] = {}
        for policy in policies:
            result, per, where = _count(arch, kwargs, size, frames, policy, device, meta_net, net)
            if where != 'meta':
                meta_net = None  # the arch needs real values: count the rest on the device too
            entry[policy or 'default'] = dict(
                macs_per_frame=result['macs'] / per,
                macs_forward=result['macs'],
                counted_on=where,
                counted=result['counted'],
                not_counted=result['not_counted'],
                data_movement=sorted(result['data_movement']))
            log(f"  {arch}: {result['macs'] / per / 1e9:,.3f} G MACs{' per frame' if frames_in else ''} at "
                f"{size_name(size)}{'' if policy is None else f' ({policy})'} (counted on {where}, "
                f"{result['seconds']:.1f} s)")
    del meta_net
    if not latency:
        step('done')
        return res

    size = sizes[-1]
    h, w = size
    step(f'latency {size_name(size)}')
    net = net.to(device)
    x, per = model_cost.make_input(net, h, w, frames=frames, device=device)
    lat = res['latency'] = dict(size=size_name(size), device=str(device), repeats=repeats, restored_per_forward=per)
    with torch.inference_mode():
        peak, out = measure_peak_memory(net, x)  # also the warm-up
    del out
    lat['peak_memory_bytes'] = peak
    lat['weights_bytes'] = sum(p.numel() * p.element_size() for p in net.parameters())
    log(f'  {arch}: peak memory {peak / 1e9:.3f} GB at {size_name(size)} (warm-up pass)')
    lat['seconds'] = []
    for i in range(repeats):
        lat['seconds'] += time_calls(net, x, 1, device)
        log(f"  {arch}: forward {i + 1}/{repeats} at {size_name(size)}: {lat['seconds'][-1]:.3f} s")
    lat['median_s'] = statistics.median(lat['seconds'])
    lat['per_frame_s'] = lat['median_s'] / per
    del x, net
    if device.type == 'cuda':
        torch.cuda.empty_cache()

    step('reference conv stack')
    forward_macs = res['macs'][size_name(size)][res['default_policy']]['macs_forward']
    num = max(1, round(forward_macs / conv_macs(h, w)))
    stack = conv_stack(num).to(device).eval()
    s = torch.rand(1, STACK_WIDTH, h, w, device=device)
    time_calls(stack, s, 1, device)  # warm-up
    ref = res['stack'] = dict(convs=num, width=STACK_WIDTH, macs=num * conv_macs(h, w),
                              seconds=time_calls(stack, s, repeats, device))
    ref['median_s'] = statistics.median(ref['seconds'])
    del stack, s
    arch_rate = forward_macs / lat['median_s']
    ref_rate = ref['macs'] / ref['median_s']
    res['macs_per_s'] = arch_rate
    res['stack_macs_per_s'] = ref_rate
    res['flop_efficiency'] = arch_rate / ref_rate
    log(f"  {arch}: {num} reference convs {ref['median_s']:.3f} s; FLOP-efficiency {res['flop_efficiency']:.2f}")
    step('done')
    return res


def _signal_name(code):
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f'signal {-code}'


def run_isolated(spec, log=print):
    """:func:`measure_arch` in a subprocess (``--worker``); a crash or kill is returned as ``error``."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, result_path = osp.join(tmp, 'spec.json'), osp.join(tmp, 'result.json')
        with open(spec_path, 'w') as f:
            json.dump(dict(spec, result=result_path), f)
        with open(osp.join(tmp, 'stderr.txt'), 'w+') as err:
            proc = subprocess.Popen([sys.executable, osp.abspath(__file__), '--worker', spec_path],
                                    stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
            for line in proc.stdout:  # the worker's progress lines, relayed (under the progress bar)
                log(line.rstrip('\n'))
            proc.wait()
            err.seek(0)
            stderr = err.read()
        res = None
        if osp.isfile(result_path):
            with open(result_path) as f:
                res = json.load(f)
    if res is None:
        res = dict(arch=spec['arch'], kwargs=spec['kwargs'], paper=PAPER.get(spec['arch']))
    if proc.returncode != 0:
        if proc.returncode < 0:
            why = f'killed by {_signal_name(proc.returncode)}'
            if proc.returncode == -signal.SIGKILL:
                why += ' (out of memory?)'
        else:
            lines = [line for line in stderr.strip().splitlines() if line.strip()]
            why = lines[-1] if lines else f'exit status {proc.returncode}'
        res['error'] = f"{why} during step '{res.get('step', 'start')}'"
        res['stderr_tail'] = stderr[-4000:]
    return res


def worker(spec_path):
    """The subprocess side of :func:`run_isolated`: measure, saving the partial result after every step."""
    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])

    def save(res):
        res = dict(res, peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        tmp = spec['result'] + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(res, f)
        os.replace(tmp, spec['result'])

    res = measure_arch(spec['arch'], spec['kwargs'], [tuple(s) for s in spec['sizes']], spec['repeats'],
                       spec['device'], spec['frames'], spec['latency'], log=lambda line: print(line, flush=True),
                       save=save)
    save(res)


# ---------------------------------------------------------------------------------------------------------------------
# checkpoints: PSNR / SSIM on paired folders
# ---------------------------------------------------------------------------------------------------------------------


def paired_images(lq_dir, gt_dir):
    """[(relative path, lq path, gt path)] for every image under ``lq_dir`` (recursively), matched by relative path
    under ``gt_dir``; raises FileNotFoundError naming what is missing."""
    from deblurzoo.inference.media import IMAGE_EXTS
    for folder in (lq_dir, gt_dir):
        if not osp.isdir(folder):
            raise FileNotFoundError(f'--data: no such folder {folder}')
    pairs, missing = [], []
    for root, dirs, files in os.walk(lq_dir):
        dirs.sort()
        for name in sorted(files):
            if osp.splitext(name)[1].lower() not in IMAGE_EXTS:
                continue
            rel = osp.relpath(osp.join(root, name), lq_dir)
            gt = osp.join(gt_dir, rel)
            (pairs if osp.isfile(gt) else missing).append((rel, osp.join(root, name), gt))
    if missing:
        names = ', '.join(rel for rel, _, _ in missing[:5]) + (' ...' if len(missing) > 5 else '')
        raise FileNotFoundError(f'--data: {len(missing)} image(s) of {lq_dir} have no partner in {gt_dir}: {names}')
    if not pairs:
        raise FileNotFoundError(f'--data: no images ({", ".join(IMAGE_EXTS)}) under {lq_dir}')
    return pairs


def evaluate_checkpoint(model, weights, pairs, device='cpu', log=print):
    """Mean PSNR / SSIM of ``model`` (arch name or option file) with ``weights`` over ``pairs``
    (:func:`paired_images`). Video nets restore each folder's frames, in name order, as one sequence."""
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from deblurzoo.inference.loader import load_model
    from deblurzoo.inference.media import read_image, to_array, to_tensor
    loaded = load_model(model, weights, device=device)
    restorer = loaded.restorer()
    device = loaded.device
    video = loaded.video
    groups = defaultdict(list)  # video nets: one sequence per folder; image nets: one image each
    for pair in pairs:
        groups[osp.dirname(pair[0]) if video else pair[0]].append(pair)
    psnrs, ssims, seconds = [], [], 0.0
    bar = tqdm(total=len(pairs), desc=f'{osp.basename(model)}', unit='img', leave=False)
    for group in groups.values():
        lqs = (to_tensor(read_image(lq)[0], device) for _, lq, _ in group)
        start = time.perf_counter()
        outs = restorer.video(lqs) if video else (restorer.image(next(lqs)), )
        for (rel, _, gt), out in zip(group, outs):
            _sync(device)
            seconds += time.perf_counter() - start
            restored = np.round(to_array(out) * 255).astype(np.float64)
            truth = np.round(read_image(gt)[0] * 255).astype(np.float64)
            if restored.shape != truth.shape:
                raise ValueError(f'{rel}: restored {restored.shape[:2]} but the sharp image is {truth.shape[:2]}')
            psnrs.append(calculate_psnr(restored, truth, crop_border=0))
            ssims.append(calculate_ssim(restored, truth, crop_border=0))
            bar.update()
            start = time.perf_counter()
    bar.close()
    res = dict(model=model, weights=loaded.weights, arch=loaded.arch, kind=loaded.kind,
               self_ensemble=restorer.num, images=len(pairs), psnr=float(np.mean(psnrs)),
               ssim=float(np.mean(ssims)), seconds_per_image=seconds / len(pairs), device=str(device))
    log(f"  {model}: PSNR {res['psnr']:.2f} dB, SSIM {res['ssim']:.4f} over {len(pairs)} images")
    return res


# ---------------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------------


def fmt(value, digits=2):
    """A number for the table: 3 significant digits below 1, ``digits`` decimals up to 100, thousands separated."""
    if value is None:
        return DASH
    if value == 0:
        return '0'
    if abs(value) < 1:
        return f'{value:.3g}'
    if abs(value) < 100:
        return f'{value:.{digits}f}'
    return f'{value:,.0f}'


def _macs(res, size):
    entry = (res.get('macs') or {}).get(size_name(size))
    return None if entry is None else entry[res['default_policy']]['macs_per_frame'] / 1e9


def _ops_note(ops, limit=12):
    parts = [f"{name} ({rec['calls']}x, {fmt(rec['elements'] / 1e9)} G el.)" for name, rec in ops.items()]
    return ', '.join(parts[:limit]) + (f', and {len(parts) - limit} more' if len(parts) > limit else '')


def markdown(report):
    sizes = [tuple(s) for s in report['settings']['sizes']]
    last = size_name(sizes[-1])
    machine = report['machine']
    lines = ['# deblurzoo benchmark', '',
             f"Measured on {machine['device_name']} ({machine['threads']} torch threads), torch {machine['torch']}.",
             '']
    results = report['archs']
    if results:
        head = (['arch', 'paper', 'params (M)'] + [f'MACs @{size_name(s)} (G)' for s in sizes]
                + [f"latency @{last} (s, {machine['device_name']})", f'peak mem @{last} (GB)', 'FLOP-efficiency',
                   "paper's figures"])
        lines += ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        for name, res in results.items():
            paper = res.get('paper') or {}
            figures = '; '.join(v for v in (paper.get('params'), paper.get('size'), paper.get('runtime'))
                                if v and v != DASH) or DASH
            lat = res.get('latency') or {}
            mem = lat.get('peak_memory_bytes')
            row = [name, paper.get('paper', DASH), fmt(res['params'] / 1e6) if 'params' in res else DASH]
            row += [fmt(_macs(res, s)) for s in sizes]
            row += [fmt(lat.get('per_frame_s'), 3), fmt(None if mem is None else mem / 1e9, 3),
                    fmt(res.get('flop_efficiency')), figures]
            if res.get('error'):
                row[-1] = f"**failed: {res['error']}**; " + row[-1]
            lines.append('| ' + ' | '.join(row) + ' |')
        lines += ['', "## What the papers state", '',
                  '| arch | parameters | size | MACs / FLOPs | runtime | quality (PSNR / SSIM) | source |',
                  '|---|---|---|---|---|---|---|']
        for name in results:
            p = PAPER.get(name)
            cells = [DASH] * 6 if p is None else [p['params'], p['size'], p['macs'], p['runtime'], p['quality'],
                                                  p['source']]
            lines.append('| ' + ' | '.join([name] + cells) + ' |')
    if report.get('checkpoints'):
        lines += ['', '## Checkpoints', '', f"Paired images: {report['settings']['data']}", '',
                  '| model | checkpoint | arch | images | self-ensemble | PSNR (dB) | SSIM | s / image (with I/O) |',
                  '|---|---|---|---|---|---|---|---|']
        for c in report['checkpoints']:
            if c.get('error'):
                lines.append(f"| {c['model']} | {c.get('weights') or DASH} | **failed: {c['error']}** |"
                             + ' |' * 5)
                continue
            lines.append(f"| {c['model']} | {c['weights'] or DASH} | {c['arch']} | {c['images']} | "
                         f"{c['self_ensemble'] if c['self_ensemble'] > 1 else 'off'} | {c['psnr']:.2f} | "
                         f"{c['ssim']:.4f} | {fmt(c['seconds_per_image'], 3)} |")
    if results:
        lines += ['', '## Notes', '']
        lines.append(
            '- MACs: `torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2) over one eval forward, deformable and '
            "pixel-dependent filtering through deblurzoo's 'pytorch' backend; video archs per restored frame. Only "
            'convolutions and matrix products are counted. Arithmetic the counter cannot see, at '
            f'{last} (op, calls, elements written):')
        for name, res in results.items():
            entry = (res.get('macs') or {}).get(last)
            if entry:
                ops = entry[res['default_policy']]['not_counted']
                lines.append(f'  - {name}: not counted: {_ops_note(ops) if ops else "nothing"}')
        seen = {op for res in results.values() for entry in (res.get('macs') or {}).values()
                for counts in entry.values() for op in counts['not_counted']}
        legend = [f'`{op}`: {note}' for op, note in OP_NOTES.items() if op in seen]
        if legend:
            lines.append(f"  ({'; '.join(legend)}.)")
        for name, res in results.items():
            if len(res.get('policies', ())) > 1 and res.get('macs'):
                per = ', '.join(f"{fmt(e['uniform']['macs_per_frame'] / 1e9)} G @{s}" for s, e in res['macs'].items())
                lines.append(f'- {name}: adaptive sampling (greedy top-N, the eval default) in the table; uniform '
                             f'sampling: {per}.')
        video = [n for n, r in results.items() if r.get('kind') in ('window', 'sequence')]
        if video:
            lines.append(f"- Video archs ({', '.join(video)}): MACs and latency per restored frame (window archs take "
                         f"their frames and restore one; recurrent ones a {report['settings']['frames']}-frame clip).")
        lines.append(
            f"- Latency: median of {report['settings']['repeats']} eval forwards at {last} under inference mode "
            'after a warm-up. Peak memory: beyond the input and weights, of that warm-up forward '
            '(`measure_peak_memory`: CUDA max allocated; on CPU the tensors alive at once, a lower bound). '
            'FLOP-efficiency: (arch MACs / s) / (MACs / s of a plain stack of 64->64 3x3 convs + ReLU with as many '
            'MACs, timed the same way in the same run).')
        rss = [f"{n} {r['peak_rss_bytes'] / 1e9:.2f}" for n, r in results.items() if r.get('peak_rss_bytes')]
        if rss:
            lines.append(f"- Peak RSS of each arch's worker process (GB, everything it did): {', '.join(rss)}.")
        lines.append(f"- Machine: {machine['cpu']} ({machine['cpu_count']} CPUs, {machine['threads']} torch "
                     f"threads), {machine['platform']}, Python {machine['python']}, torch {machine['torch']}; "
                     f"timing device {machine['device_name']}. Total run {report['seconds']:.0f} s.")
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='See the module docstring (scripts/benchmark.py) for what is measured.')
    parser.add_argument('--archs', nargs='*', metavar='NAME',
                        help='archs to benchmark (default: every registered deblurzoo arch; none: checkpoints only)')
    parser.add_argument('--kwargs', action='append', metavar="NAME='{json}'",
                        help='constructor arguments for one arch (repeatable)')
    parser.add_argument('--sizes', nargs='+', type=model_cost.parse_size,
                        default=[model_cost.parse_size(s) for s in DEFAULT_SIZES],
                        metavar='WxH', help='sizes to count MACs at; latency and memory at the last '
                        f'(default: {" ".join(DEFAULT_SIZES)})')
    parser.add_argument('--repeats', type=int, default=3, help='timed forwards per arch (median; default: 3)')
    parser.add_argument('--frames', type=int, default=2, help='clip length for recurrent archs (default: 2)')
    parser.add_argument('--skip-latency', action='store_true', help='parameters and MACs only')
    parser.add_argument('--device', default='auto', help="where to time: 'auto' (a GPU if any), cpu, cuda, cuda:1")
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--no-isolate', dest='isolate', action='store_false',
                        help='measure every arch in this process instead of one subprocess each')
    parser.add_argument('--checkpoint', action='append', metavar='MODEL[=CKPT]',
                        help='PSNR/SSIM of a trained model on --data: MODEL an arch name or option file (repeatable)')
    parser.add_argument('--data', nargs=2, metavar=('LQ_DIR', 'GT_DIR'),
                        help='paired blurry/sharp image folders for --checkpoint (same relative file names)')
    parser.add_argument('--out', default='results/benchmark', help='writes OUT.md and OUT.json '
                        '(default: results/benchmark)')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    known = registered_archs()
    if args.archs is None:
        args.archs = known
    unknown = [a for a in args.archs if a not in known]
    if unknown:
        parser.error(f'--archs: unknown arch {", ".join(unknown)}; registered deblurzoo archs: {", ".join(known)}')
    try:
        args.kwargs = parse_kwargs(args.kwargs, args.archs)
    except ValueError as err:
        parser.error(str(err))
    if args.repeats < 1 or args.frames < 1:
        parser.error('--repeats and --frames must be at least 1')
    if args.checkpoint and not args.data:
        parser.error('--checkpoint needs --data LQ_DIR GT_DIR')
    if not args.archs and not args.checkpoint:
        parser.error('nothing to do: no archs and no --checkpoint')
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be at least 1')
    inputs = [path for item in args.checkpoint or () for path in parse_checkpoint(item)]
    try:  # before hours of measuring: the report can be written, and replaces no file of the user's
        check_report_targets([args.out + '.json', args.out + '.md'], '--out', inputs)
    except ValueError as err:
        parser.error(str(err))
    from deblurzoo.inference import InferenceError
    from deblurzoo.inference.loader import resolve_device
    try:
        args.device = str(resolve_device(args.device))
    except InferenceError as err:
        parser.error(str(err))
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run(args, argv)
    finally:
        torch.set_num_threads(threads)


def run(args, argv=None):
    """The benchmark :func:`main` runs with parsed arguments; returns the report (also written to ``--out``)."""
    start = time.perf_counter()
    report = dict(machine=machine_info(args.device), archs={}, checkpoints=[],
                  settings=dict(sizes=args.sizes, repeats=args.repeats, frames=args.frames, device=args.device,
                                latency=not args.skip_latency, isolate=args.isolate, kwargs=args.kwargs,
                                data=args.data, argv=sys.argv[1:] if argv is None else list(argv)))
    bar = tqdm(args.archs, desc='benchmark', unit='arch', disable=not args.archs)
    for arch in bar:
        bar.set_postfix_str(arch)
        spec = dict(arch=arch, kwargs=args.kwargs.get(arch, {}), sizes=args.sizes, repeats=args.repeats,
                    device=args.device, frames=args.frames, latency=not args.skip_latency, threads=args.threads)
        begin = time.perf_counter()
        if args.isolate:
            res = run_isolated(spec, log=tqdm.write)
        else:
            partial = dict(arch=arch, kwargs=spec['kwargs'], paper=PAPER.get(arch))
            try:
                res = measure_arch(arch, spec['kwargs'], args.sizes, args.repeats, args.device, args.frames,
                                   not args.skip_latency, log=tqdm.write, save=lambda r: partial.update(r))
            except Exception as err:  # noqa: BLE001  (one arch's failure must not end the run)
                res = dict(partial, error=f"{type(err).__name__}: {err} during step '{partial.get('step', 'start')}'")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()  # e.g. after running out of GPU memory
        res['wall_s'] = time.perf_counter() - begin
        report['archs'][arch] = res
        if res.get('error'):
            tqdm.write(f"{arch}: FAILED ({res['error']}) after {res['wall_s']:.0f} s")
        else:
            lat = res.get('latency') or {}
            macs = ', '.join(f'{fmt(_macs(res, s))} G @{size_name(s)}' for s in args.sizes)
            timing = (f", {fmt(lat['per_frame_s'], 3)} s/frame, {fmt(lat['peak_memory_bytes'] / 1e9, 3)} GB, "
                      f"FLOP-efficiency {fmt(res['flop_efficiency'])}") if lat else ''
            tqdm.write(f"{arch}: {fmt(res['params'] / 1e6)} M params, MACs {macs}{timing} ({res['wall_s']:.0f} s)")
    if args.checkpoint:
        pairs = paired_images(*args.data)
        for item in args.checkpoint:
            model, weights = parse_checkpoint(item)
            try:
                report['checkpoints'].append(evaluate_checkpoint(model, weights, pairs, args.device, log=tqdm.write))
            except Exception as err:  # noqa: BLE001
                report['checkpoints'].append(dict(model=model, weights=weights, error=str(err)))
                tqdm.write(f'{model}: FAILED ({err})')
    report['seconds'] = time.perf_counter() - start
    write_report(args.out + '.json', json.dumps(report, indent=1, default=str))
    write_report(args.out + '.md', markdown(report))
    print(f"wrote {args.out}.md and {args.out}.json ({report['seconds']:.0f} s)")
    return report


if __name__ == '__main__':
    main()
