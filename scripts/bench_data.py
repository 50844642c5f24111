"""Is training waiting for data? Loader throughput of a training dataset beside the training step of its option file.

    python scripts/bench_data.py -opt options/train_svdn_gopro.yml --workers 0 2 4 8
    python scripts/bench_data.py -opt options/train_svdn_gopro.yml --lmdb datasets/GoPro/gopro_train_blur.lmdb \\
        datasets/GoPro/gopro_train_sharp.lmdb datasets/GoPro/gopro_train_flow.lmdb     # disk beside LMDB
    python scripts/bench_data.py --tiny                 # every registered training dataset on a generated tiny set

For the option file's training dataset (``datasets.train``, as configured: PNG/JPEG folders or LMDB), and for its
LMDB copy when ``--lmdb LQ GT [FLOW]`` names one (``scripts/make_lmdb.py`` makes them), the loader is built with
BasicSR's ``build_dataloader`` (the trainer's: ``pin_memory``, ``prefetch_mode: cpu`` and the workers' seeding all
apply) for every ``--workers`` count and ``--prefetch`` mode, and ``--batches`` batches are drawn after the first (the
workers' start is reported apart): samples per second. ``prefetch_mode: cuda`` (BasicSR's ``CUDAPrefetcher``, which
needs ``pin_memory: true``) copies each batch to the GPU on a side stream; it is measured on CUDA only.

Then the option's model is built as the trainer builds it (on ``--device``, with the option's ``train.amp`` etc.)
and ``--steps`` training steps on one batch are timed after two warm-up steps: samples per second of the step. The
verdict compares the best loader setting with the step: the loader is the bottleneck when it delivers fewer samples
per second than the step consumes (add workers, use LMDB, or shrink the crops' decoding cost), else the step is.
The machine's load is printed: other processes skew both sides.

``--tiny`` builds every registered training dataset (the test suite's cases in ``tests/test_registry.py``, on
``tests/data_factory.py``'s generated sets; GoPro and DVD also from LMDB) and times the step of
``options/demo/train_svdn_demo.yml`` with the test suite's tiny SVDN, on CPU: the test mode.
"""
import argparse
import gc
import json
import os
import os.path as osp
import pathlib
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


def tiny_kwargs(arch):
    """The test suite's tiny constructor arguments of ``arch`` (``tests/test_registry.py``'s ``TINY``)."""
    sys.path.insert(0, osp.join(REPO, 'tests'))
    from test_registry import TINY
    return TINY[arch]


def training_options(path, root, num_gpu, tiny=False):
    """The option file ``path`` as BasicSR's ``parse_options`` makes it for one training process, experiments under
    ``root`` (no folder is written); ``tiny``: the test suite's tiny nets, 32x32 crops, batches of 2. The file is read
    as the entry points read it (``option_values.load_option_file``); a bad one raises its ``OptionError``."""
    from deblurzoo.option_values import load_option_file
    opt = load_option_file(path)
    exp = osp.join(root, 'experiments', opt['name'])
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False, num_gpu=num_gpu)
    opt['path'] = dict(opt.get('path') or {}, experiments_root=exp, models=osp.join(exp, 'models'),
                       training_states=osp.join(exp, 'training_states'), log=exp,
                       visualization=osp.join(exp, 'visualization'))
    for phase, ds in opt['datasets'].items():
        ds.update(phase=phase.split('_')[0], scale=opt.get('scale', 1))
    if tiny:
        for key in ('network_g', 'network_stage1'):
            if opt.get(key):
                opt[key] = {'type': opt[key]['type'], **tiny_kwargs(opt[key]['type'])}
        opt['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2)
    return opt


def tiny_datasets(tmp):
    """[(label, train dataset option)] for every registered training dataset, on generated sets; LMDB for GoPro and
    DVD too."""
    sys.path.insert(0, osp.join(REPO, 'tests'))
    import data_factory
    from test_registry import DATASET_CASES, DATASETS
    out = []
    for name in DATASETS:
        for opt, _ in DATASET_CASES[name](pathlib.Path(tmp) / name):
            if opt['phase'] != 'train':
                continue
            out.append((f'{name} (disk)', opt))
            if name == 'GoProDataset':
                lmdbs = data_factory.make_gopro_lmdb(opt['dataroot'], 'train', osp.join(tmp, 'lmdb'))
                out.append((f'{name} (lmdb)', lmdb_option(opt, lmdbs['blur'], lmdbs['sharp'], lmdbs.get('flow'))))
            elif name == 'DVDDataset':
                lmdbs = data_factory.make_dvd_lmdb(opt['dataroot'], osp.join(tmp, 'lmdb'))
                out.append((f'{name} (lmdb)', lmdb_option(opt, lmdbs['lq'], lmdbs['gt'])))
    return out


def lmdb_option(opt, lq, gt, flow=None):
    """The dataset option ``opt`` reading from LMDBs instead (deblurzoo's datasets' ``dataroot_lq/gt/flow`` keys)."""
    opt = dict(opt, io_backend={'type': 'lmdb'}, dataroot_lq=lq, dataroot_gt=gt)
    if flow:
        opt['dataroot_flow'] = flow
    return opt


def loader_rate(dataset_opt, workers, prefetch, batches, device):
    """(first-batch seconds, samples per second over ``batches`` further batches) of BasicSR's training loader."""
    import torch
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.data.prefetch_dataloader import CUDAPrefetcher
    opt = dict(dataset_opt, num_worker_per_gpu=workers, prefetch_mode=prefetch,
               pin_memory=dataset_opt.get('pin_memory', False) or prefetch == 'cuda')
    dataset = build_dataset(opt)
    loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=0)
    start = time.perf_counter()
    if prefetch == 'cuda':
        fetch = CUDAPrefetcher(loader, {'num_gpu': 1})
        batch = fetch.next()
    else:
        fetch = iter(loader)
        batch = next(fetch)
    first = time.perf_counter() - start
    samples, start = 0, time.perf_counter()
    for _ in range(batches):
        batch = fetch.next() if prefetch == 'cuda' else next(fetch, None)
        if batch is None:  # one pass is over: start another
            fetch = iter(loader)
            batch = next(fetch)
        samples += len(batch['lq'])
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return first, samples / (time.perf_counter() - start), batch


def step_rate(opt, batch, steps, device):
    """Samples per second of ``steps`` training steps of ``opt``'s model on ``batch`` (after two warm-up steps)."""
    import torch
    from basicsr.models import build_model
    model = build_model(opt)
    for it in range(1, steps + 3):
        if it == 3:
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        model.feed_data(batch)
        model.optimize_parameters(it)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return steps * len(batch['lq']) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-opt', help='a training option file')
    parser.add_argument('--lmdb', nargs='+', metavar='PATH', help='LQ GT [FLOW] lmdbs of the same training set')
    parser.add_argument('--workers', nargs='+', type=int, default=[0, 2, 4], help='worker counts (default: 0 2 4)')
    parser.add_argument('--prefetch', nargs='+', default=['none', 'cpu', 'cuda'], choices=['none', 'cpu', 'cuda'],
                        help="BasicSR's prefetch modes to try (cuda only on a GPU)")
    parser.add_argument('--batches', type=int, default=20, help='batches timed per loader setting')
    parser.add_argument('--steps', type=int, default=10, help='training steps timed')
    parser.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    parser.add_argument('--tiny', action='store_true', help='every registered training dataset, tiny (test mode)')
    parser.add_argument('--json', help='also write the numbers here')
    args = parser.parse_args(argv)
    if not args.tiny and not args.opt:
        parser.error('give -opt OPTION_FILE (or --tiny)')
    if args.lmdb and len(args.lmdb) not in (2, 3):
        parser.error('--lmdb takes LQ GT [FLOW]')
    import torch
    import deblurzoo  # noqa: F401  (registers the datasets and models)
    from deblurzoo.data.output_guard import check_report_targets, write_report
    from deblurzoo.inference.loader import resolve_device
    if min(args.workers) < 0 or args.batches < 1 or args.steps < 1:
        parser.error('--workers must be at least 0, --batches and --steps at least 1')
    try:
        check_report_targets([args.json], '--json', [args.opt] + list(args.lmdb or []))
        device = resolve_device(args.device)
    except ValueError as err:  # InferenceError is a ValueError too
        parser.error(str(err))
    prefetch = [p for p in args.prefetch if p != 'cuda' or device.type == 'cuda']
    with tempfile.TemporaryDirectory(prefix='bench_data_') as tmp:
        if args.tiny:
            opt = training_options(osp.join(REPO, 'options', 'demo', 'train_svdn_demo.yml'), tmp, 0, tiny=True)
            sets = tiny_datasets(tmp)
            opt['datasets']['train'] = next(o for label, o in sets if label == 'GoProDataset (disk)')
        else:
            try:
                opt = training_options(args.opt, tmp, 1 if device.type == 'cuda' else 0)
            except ValueError as err:  # OptionError: the file, line and cause
                parser.error(str(err))
            train = opt['datasets']['train']
            sets = [(f"{train['type']} ({(train.get('io_backend') or {}).get('type', 'disk')})", train)]
            if args.lmdb:
                sets.append((f"{train['type']} (lmdb)", lmdb_option(train, *args.lmdb)))
        load = os.getloadavg()[0]
        rows, batch = [], None
        print(f'load average {load:.2f} (1 min, {os.cpu_count()} CPUs); torch {torch.__version__}; device {device}')
        print(f"{'dataset':<28} {'workers':>7} {'prefetch':>8} {'first batch s':>13} {'samples/s':>10}")
        for label, dataset_opt in sets:
            # most workers first: LMDB refuses a second open of one database in a process, and a main-process read
            # (0 workers) leaves it open in the workers forked later
            for workers in sorted(args.workers, reverse=True):
                for mode in prefetch:
                    first, rate, last = loader_rate(dataset_opt, workers, None if mode == 'none' else mode,
                                                    args.batches, device)
                    gc.collect()  # closes this setting's LMDB environments before the next opens them
                    if batch is None and dataset_opt is opt['datasets']['train']:
                        batch = last  # what the step is timed on
                    rows.append(dict(dataset=label, workers=workers, prefetch=mode, first_batch_s=first,
                                     samples_per_s=rate))
                    print(f'{label:<28} {workers:>7} {mode:>8} {first:>13.3f} {rate:>10.1f}', flush=True)
        step = step_rate(opt, batch, args.steps, device)
        kind = opt['datasets']['train']['type']
        best = max((r for r in rows if r['dataset'].startswith(f'{kind} ')), key=lambda r: r['samples_per_s'])
        verdict = ('the loader' if best['samples_per_s'] < step else 'the training step')
        print(f"\ntraining step ({opt['network_g']['type']}, batch {len(batch['lq'])}, train.amp "
              f"{opt['train'].get('amp', False)}): {step:.1f} samples/s")
        print(f"best loader: {best['dataset']}, {best['workers']} workers, prefetch {best['prefetch']}: "
              f"{best['samples_per_s']:.1f} samples/s")
        print(f'bottleneck: {verdict} (load average {os.getloadavg()[0]:.2f} at the end)')
        report = dict(load=load, device=str(device), loaders=rows, step_samples_per_s=step, best_loader=best,
                      bottleneck=verdict)
        if args.json:
            write_report(args.json, json.dumps(report, indent=1))
    return report


def _cuda():
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == '__main__':
    main()
