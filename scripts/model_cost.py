"""Parameters and multiply-accumulates of a registered arch, per sampling policy for adaptive ones.

    python scripts/model_cost.py --arch SAPHNet --size 256 256
    python scripts/model_cost.py --arch SAPHNet --size 256 256 --kwargs '{"sampling": "uniform"}'

MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (which reports 2 FLOPs per MAC) over one eval forward
on a random image, with deblurzoo's 'pytorch' deformable-conv backend so that deformable and pixel-dependent filtering
is counted (the compiled torchvision kernel is invisible to the counter). Index/gather ops have no MACs.
"""
import argparse
import json
import os.path as osp
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import deblurzoo  # noqa: E402,F401  (registers the archs)
from basicsr.archs import build_network  # noqa: E402
from deblurzoo.ops import use_backend  # noqa: E402


def count(net, x, **kwargs):
    with use_backend('pytorch'), torch.no_grad(), FlopCounterMode(display=False) as counter:
        start = time.perf_counter()
        net(x, **kwargs)
        seconds = time.perf_counter() - start
    return counter.get_total_flops() / 2, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', required=True)
    parser.add_argument('--size', type=int, nargs=2, default=(256, 256), metavar=('H', 'W'))
    parser.add_argument('--kwargs', default='{}', help='constructor arguments as JSON')
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    net = build_network({'type': args.arch, **json.loads(args.kwargs)}).eval()
    params = sum(p.numel() for p in net.parameters())
    print(f'{args.arch} {json.loads(args.kwargs) or ""}: {params / 1e6:.2f}M parameters')
    x = torch.rand(1, 3, *args.size)
    policies = ['uniform', 'greedy'] if getattr(net, 'adaptive', False) else [None]
    results = {}
    for policy in policies:
        macs, seconds = count(net, x, **({} if policy is None else {'policy': policy}))
        results[policy] = macs
        name = {None: '', 'uniform': ' (uniform sampling)', 'greedy': ' (adaptive sampling, top-N)'}[policy]
        size = f'{args.size[0]}x{args.size[1]}'
        print(f'  {macs / 1e9:.1f} G MACs at {size}{name}; CPU forward {seconds:.1f} s (while counting)')
    if len(results) == 2:
        print(f"  adaptive / uniform = {results['greedy'] / results['uniform']:.3f}")


if __name__ == '__main__':
    main()
