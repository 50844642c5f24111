"""SAPHNet's adaptive sampling against its uniform path: time and peak memory side by side, and a profile by op family.

    python scripts/bench_sampling.py            # inference at 256x256 and 1280x720, training steps at 256x256
    python scripts/bench_sampling.py --sizes 128x128 --train-sizes 128x128 --repeats 1 --kwargs '{"num_feat": 16}'
    python scripts/bench_sampling.py --profile --sizes 256x256        # torch.profiler, self time per op family

It measures, in one run and on one net:
- at each of ``--sizes``, inference (eval mode, no gradient) with uniform sampling and with adaptive (greedy top-N)
  sampling;
- at each of ``--train-sizes``, one training step (forward, the losses ``SAPHNetModel`` computes, backward) of each
  phase on the same crop: the pre-training phase (uniform sampling, pixel losses on every stage) and the joint phase
  (sampled pixels, pixel losses, and the sampler's REINFORCE loss with the greedy baseline: a second forward without
  gradient that reuses stage 1, as ``SAPHNetModel`` runs it).
Times are the median of ``--repeats`` runs after a warm-up; peak memory is that of the warm-up, beyond the input and
weights (``measure_peak_memory``: CUDA's max allocated; on CPU the tensors alive at once, a lower bound). The ratios
adaptive / uniform are printed with the machine's load (``os.getloadavg``), which CPU timings depend on.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from collections import defaultdict

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import deblurzoo  # noqa: E402,F401  (registers the archs)
import model_cost  # noqa: E402  (scripts/model_cost.py: the argument readers)
from basicsr.archs import build_network  # noqa: E402
from deblurzoo.data.output_guard import check_report_targets, write_report  # noqa: E402
from deblurzoo.inference.loader import resolve_device  # noqa: E402
from deblurzoo.losses.reward_loss import AdaptiveSamplingRewardLoss  # noqa: E402
from deblurzoo.inference.test_time import measure_peak_memory  # noqa: E402

# aten op -> family, for the profile (the rest is 'other')
FAMILIES = {
    'gather': ('aten::index', 'aten::index_select', 'aten::gather', 'aten::take', 'aten::embedding'),
    'scatter': ('aten::index_put_', 'aten::index_put', 'aten::_index_put_impl_', 'aten::scatter_', 'aten::scatter',
                'aten::index_add_', 'aten::index_copy', 'aten::index_copy_'),
    'matmul (token convs, PDF, attention, linears)': ('aten::bmm', 'aten::mm', 'aten::addmm', 'aten::matmul',
                                                      'aten::einsum', 'aten::linear'),
    'PDF bilinear gathers (embedding_bag; deform conv)': ('aten::_embedding_bag_forward_only',
                                                          'aten::embedding_bag', '_DeformConv2dFunction',
                                                          'torchvision::deform_conv2d'),
    'dense conv (lattices, heads)': ('aten::conv2d', 'aten::convolution', 'aten::_convolution',
                                     'aten::mkldnn_convolution', 'aten::_slow_conv2d_forward',
                                     'aten::thnn_conv2d'),
    'softmax / sigmoid / activations': ('aten::softmax', 'aten::_softmax', 'aten::sigmoid', 'aten::tanh',
                                        'aten::leaky_relu', 'aten::leaky_relu_', 'aten::_log_softmax'),
    'sampling (top-N, sort, Bernoulli)': ('aten::topk', 'aten::sort', 'aten::bernoulli', 'aten::bernoulli_',
                                          'aten::nonzero'),
    'elementwise / copies': ('aten::mul', 'aten::add', 'aten::sub', 'aten::div', 'aten::cat', 'aten::copy_',
                             'aten::clone', 'aten::floor', 'aten::clamp', 'aten::where', 'aten::mul_', 'aten::add_',
                             'aten::rsub', 'aten::lt', 'aten::ge', 'aten::bitwise_and', 'aten::remainder',
                             'aten::floor_divide', 'aten::fill_', 'aten::zero_', 'aten::zeros', 'aten::full',
                             'aten::contiguous', 'aten::mean', 'aten::sum'),
}


def build(kwargs, device):
    torch.manual_seed(0)
    return build_network({'type': 'SAPHNet', **kwargs}).to(device)


def training_step(net, x, gt, phase, reward_loss):
    """One step of ``SAPHNetModel``'s losses: L1 on every stage; in the joint phase also the reward loss of each
    sampler with the greedy baseline (a second forward without gradient). Returns nothing; leaves gradients."""
    net.train()
    net.zero_grad(set_to_none=True)
    policy = 'uniform' if phase == 'pretrain' else 'sample'
    out, aux = net(x, policy=policy, return_aux=True)
    outputs = list(aux['stage_outputs']) + [out]
    loss = sum((o - gt).abs().mean() for o in outputs)
    if phase == 'joint':
        with torch.no_grad():
            greedy, greedy_aux = net(x, policy='greedy', return_aux=True, **reuse_kwargs(aux))
        baseline = list(greedy_aux['stage_outputs']) + [greedy]
        for i, rec in enumerate(aux['sampling']):
            first = len(outputs) - len(aux['sampling']) + i
            loss = loss + reward_loss(rec['log_prob'], outputs[first:], gt, rec['num_selected'], rec['budget'],
                                      baseline_outputs=baseline[first:], selected=rec['selected'])
    loss.backward()


def reuse_kwargs(aux):
    """What the greedy baseline pass may reuse from the sampled pass (stage 1, when the net offers it)."""
    return {'stage1': aux['stage1']} if 'stage1' in aux else {}


def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def measure(fn, repeats, device):
    """(median seconds, peak bytes of the warm-up)."""
    peak, _ = measure_peak_memory(fn)
    seconds = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return sorted(seconds)[len(seconds) // 2], peak


def bench(kwargs, sizes, train_sizes, repeats, device, log=print):
    """Inference at ``sizes`` and one training step of each phase at ``train_sizes`` ((h, w) lists), uniform and
    adaptive side by side; returns {WxH: {case: {seconds, peak_bytes}}}."""
    net = build(kwargs, device)
    reward_loss = AdaptiveSamplingRewardLoss()
    results = {}
    for h, w in list(dict.fromkeys(list(sizes) + list(train_sizes))):
        x = torch.rand(1, 3, h, w, device=device)
        gt = torch.rand(1, 3, h, w, device=device)

        def infer(policy):
            net.eval()
            with torch.no_grad():
                net(x, policy=policy)

        pairs = []  # (what, uniform case, adaptive case)
        if (h, w) in sizes:
            pairs.append(('inference', ('inference uniform', lambda: infer('uniform')),
                          ('inference adaptive', lambda: infer('greedy'))))
        if (h, w) in train_sizes:
            pairs.append(('training step',
                          ('train step, pre-training phase (uniform)',
                           lambda: training_step(net, x, gt, 'pretrain', reward_loss)),
                          ('train step, joint phase (adaptive + greedy baseline)',
                           lambda: training_step(net, x, gt, 'joint', reward_loss))))
        res = {}
        for what, *cases in pairs:
            for name, fn in cases:
                torch.manual_seed(0)
                res[name] = measure(fn, repeats, device)
                log(f'  {w}x{h} {name}: {res[name][0]:.3f} s, peak {res[name][1] / 1e9:.3f} GB')
            (u, _), (a, _) = cases
            log(f'  {w}x{h} {what}: adaptive / uniform time {res[a][0] / res[u][0]:.2f}, '
                f'peak memory {res[a][1] / max(res[u][1], 1):.2f}')
        results[f'{w}x{h}'] = {k: dict(seconds=v[0], peak_bytes=v[1]) for k, v in res.items()}
    return results


def profile(kwargs, size, device, log=print):
    """Self time per op family of one adaptive (greedy) inference, after a warm-up; returns {family: seconds}."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    net = build(kwargs, device).eval()
    x = torch.rand(1, 3, *size, device=device)
    family_of = {op: fam for fam, ops in FAMILIES.items() for op in ops}
    table = {}
    for policy in ('uniform', 'greedy'):
        with torch.no_grad():
            net(x, policy=policy)  # warm-up
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if x.is_cuda else [])
            with torch_profile(activities=activities) as prof:
                net(x, policy=policy)
                _sync(device)
        totals, ops = defaultdict(float), defaultdict(float)
        for evt in prof.key_averages():
            seconds = evt.self_cpu_time_total / 1e6
            fam = family_of.get(evt.key, 'other')
            totals[fam] += seconds
            if fam == 'other':
                ops[evt.key] += seconds
        table[policy] = dict(totals)
        top_other = sorted(ops.items(), key=lambda kv: -kv[1])[:6]
        log(f"  {policy}: 'other' is mostly " + ', '.join(f'{k} {v:.3f} s' for k, v in top_other))
    fams = sorted(set(table['uniform']) | set(table['greedy']), key=lambda f: -table['greedy'].get(f, 0))
    log(f"\n  {'op family':<52} {'uniform s':>10} {'adaptive s':>11}")
    for fam in fams:
        log(f"  {fam:<52} {table['uniform'].get(fam, 0):>10.3f} {table['greedy'].get(fam, 0):>11.3f}")
    log(f"  {'total':<52} {sum(table['uniform'].values()):>10.3f} {sum(table['greedy'].values()):>11.3f}")
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', nargs='+', type=model_cost.parse_size, default=['256x256', '1280x720'],
                        help='WxH sizes of the inference runs')
    parser.add_argument('--train-sizes', nargs='+', type=model_cost.parse_size, default=['256x256'],
                        help='WxH crops of the training steps (default: the crop train_saphn.yml trains on; a default '
                        'SAPHNet training step at 1280x720 needs some 50 GB on the CPU)')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs per case (median; after a warm-up)')
    parser.add_argument('--kwargs', default='{}', help='SAPHNet constructor arguments as JSON')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--profile', action='store_true', help='profile one inference per policy by op family')
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)  # string defaults go through the type too
    try:
        kwargs = model_cost.arch_kwargs('SAPHNet', args.kwargs)
        check_report_targets([args.json], '--json')
        args.device = str(resolve_device(args.device))
    except ValueError as err:  # InferenceError is a ValueError too
        parser.error(str(err))
    if args.repeats < 1 or (args.threads is not None and args.threads < 1):
        parser.error('--repeats and --threads must be at least 1')
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    print(f'SAPHNet {kwargs or "(defaults)"} on {args.device}, {torch.get_num_threads()} threads; load average '
          f'{load} (1, 5, 15 min)')
    if args.profile:
        results = {f'{w}x{h}': profile(kwargs, (h, w), args.device) for h, w in sizes}
    else:
        results = bench(kwargs, sizes, args.train_sizes, args.repeats, args.device)
    print(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        write_report(args.json, json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
