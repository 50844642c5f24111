"""Parameters and multiply-accumulates of a registered arch, per sampling policy for adaptive ones.

    python scripts/model_cost.py --arch SAPHNet --size 256 256
    python scripts/model_cost.py --arch SAPHNet --size 256 256 --kwargs '{"sampling": "uniform"}'
    python scripts/model_cost.py --arch SARN --kwargs '{"num_drm": 3, "with_sa": false}'
    python scripts/model_cost.py --arch SARNRecurrent --frames 4

Video archs get a clip: window archs (a ``num_frame`` attribute, e.g. SARNMulti) their ``num_frame`` frames,
recurrent ones (a ``stream`` method, e.g. SARNRecurrent) ``--frames`` frames; MACs are then given per restored frame.
Model size is float32 bytes (1 MB = 1e6 bytes, as papers quote it).

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
    parser.add_argument('--frames', type=int, default=2, help='clip length for recurrent video archs (default: 2)')
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    net = build_network({'type': args.arch, **json.loads(args.kwargs)}).eval()
    params = sum(p.numel() for p in net.parameters())
    print(f'{args.arch} {json.loads(args.kwargs) or ""}: {params:,} parameters ({params / 1e6:.2f}M, '
          f'{4 * params / 1e6:.2f} MB float32)')
    frames = getattr(net, 'num_frame', None) or (args.frames if hasattr(net, 'stream') else None)
    x = torch.rand(1, 3, *args.size) if frames is None else torch.rand(1, frames, 3, *args.size)
    per = 1 if frames is None or hasattr(net, 'num_frame') else frames  # restored frames per forward
    policies = ['uniform', 'greedy'] if getattr(net, 'adaptive', False) else [None]
    results = {}
    for policy in policies:
        macs, seconds = count(net, x, **({} if policy is None else {'policy': policy}))
        macs /= per
        results[policy] = macs
        name = {None: '', 'uniform': ' (uniform sampling)', 'greedy': ' (adaptive sampling, top-N)'}[policy]
        size = f'{args.size[0]}x{args.size[1]}'
        unit = ' per frame' if frames is not None else ''
        print(f'  {macs / 1e9:.1f} G MACs{unit} at {size}{name}; CPU forward {seconds:.1f} s (while counting)')
    if len(results) == 2:
        print(f"  adaptive / uniform = {results['greedy'] / results['uniform']:.3f}")


if __name__ == '__main__':
    main()
