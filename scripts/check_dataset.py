"""Check a dataset before a long training run, and report every problem at once.

    python scripts/check_dataset.py --type GoProDataset --dataroot datasets/GOPRO_Large --split train \
        --gt-size 256 --use-flow
    python scripts/check_dataset.py --type DVDDataset --num-frame 10 --gt-size 256 --set partition=train \
        --dataroot datasets/DeepVideoDeblurring_Dataset/quantitative_datasets
    python scripts/check_dataset.py --type REDSDeblurDataset --num-frame 1 --lmdb \
        --dataroot-lq datasets/REDS/lmdb/REDS_train_blur.lmdb --dataroot-gt datasets/REDS/lmdb/REDS_train_sharp.lmdb
    python scripts/check_dataset.py -opt options/train_svdn_gopro.yml      # every dataset of its datasets: section

Any dataset deblurzoo registers (GoPro, DVD, REDS, HIDE, RealBlur; disk and LMDB backends) is built by its own class
with a ``data_util.Problems`` collector, so the layout is read by the one scan the training uses, and every
structural problem is listed, not only the first: missing or empty folders, unpaired frames in every sequence,
sequences shorter than ``num_frame``, missing flows, LMDB keys of one meta_info.txt missing from another. Then every
file the dataset would read is read and decoded as training reads it (``data_util.decode_image``, ``flow_util``),
with a progress bar: empty, corrupt and truncated files, blurry/sharp size mismatches, images smaller than
``gt_size`` (training), flows of the wrong shape or with non-finite values, LMDB keys listed in meta_info.txt but
missing from the database. Grayscale, RGBA and 16-bit images, which are read correctly, are reported as notes.

With ``-opt`` each dataset of the option file's ``datasets:`` section is checked with its own options, its phase
taken from its key as BasicSR does (``train``, ``val``, ``test_1`` ...). With ``--type`` the options come from the
command line (``--set KEY=VALUE`` for any other option; the phase is ``train`` when ``--gt-size`` is given, else
``test``). Both may be given.

Output: each problem on a line naming the file (or folder, or LMDB key) and what is wrong, notes grouped by kind, and
a summary line. Exit status: 0 if no problem was found (notes allowed), 1 if there are problems, 2 for usage errors.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

import yaml

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import deblurzoo  # noqa: E402,F401  (registers the datasets; patches BasicSR first)
from basicsr.utils.registry import DATASET_REGISTRY  # noqa: E402
from deblurzoo.data.data_util import READ_ERRORS, Problems, check_files, check_option_keys, error_message  # noqa: E402
from deblurzoo.data.safe_io import shown  # noqa: E402
from deblurzoo.option_values import load_option_file  # noqa: E402

# command-line flags that set a dataset option of the same name (dashes -> underscores)
OPTION_FLAGS = ('dataroot', 'dataroot_lq', 'dataroot_gt', 'dataroot_flow', 'split', 'phase', 'gt_size', 'num_frame',
                'meta_info_file')


def deblurzoo_datasets():
    """{name: class} of the datasets deblurzoo registers."""
    return {name: cls for name, cls in DATASET_REGISTRY if cls.__module__.startswith('deblurzoo.')}


def check_dataset(opt, workers=0):
    """Check one dataset of options ``opt`` (a dict with ``type``).

    Returns:
        tuple[Problems, str]: Its problems (``notes`` as (note, file name) pairs) and a one-line description.
    """
    problems = Problems()
    data = opt.get('dataroot') or opt.get('dataroot_lq') or 'no dataroot'
    name = f" '{opt['name']}'" if opt.get('name') else ''
    label = f"{opt['type']}{name} (phase {opt.get('phase', 'test')}, {shown(data)})"
    cls = deblurzoo_datasets().get(opt['type'])
    if cls is None:
        problems.notes.append(('not a deblurzoo dataset, not checked', label))
        return problems, label
    opt = {key: value for key, value in opt.items() if key != 'check_sizes'}  # every file's size is checked here
    try:
        dataset = cls(opt, problems=problems)
    except READ_ERRORS as err:  # nothing to go on with: a missing folder or option
        problems.errors.append(error_message(err))
        return problems, label
    groups = dataset.file_groups()
    print(f'{label}: {len(groups)} {"sequences" if hasattr(dataset, "sequences") else "samples"}', flush=True)
    files = check_files(dataset, problems, workers, opt['type'])
    return problems, f'{label}: {files} files'


def options_from_file(path):
    """[(key, dataset options)] of an option file's ``datasets:`` section, with ``phase`` set from the key as BasicSR
    does ('val_2' -> 'val') and ``~`` expanded in the dataroots. The file is read as the entry points read it
    (``option_values.load_option_file``: UTF-8, strict YAML, duplicate keys refused); errors are ``ValueError``."""
    datasets = load_option_file(path).get('datasets')
    if not datasets:
        raise ValueError(f'{shown(path)} has no datasets: section')
    entries = []
    for key, dataset in datasets.items():
        if not isinstance(dataset, dict):
            raise ValueError(f'{shown(path)}: datasets.{key} must be a mapping of dataset options, got {dataset!r}')
        dataset = dict(dataset, phase=key.split('_')[0])
        for option in ('dataroot', 'dataroot_lq', 'dataroot_gt', 'dataroot_flow'):
            if isinstance(dataset.get(option), str):
                dataset[option] = osp.expanduser(dataset[option])
        entries.append((key, dataset))
    return entries


def options_from_args(args, parser):
    """The dataset options of ``--type`` and its flags; usage errors exit through ``parser``."""
    cls = deblurzoo_datasets()[args.type]
    opt = OrderedDict(type=args.type)
    opt.update((key, getattr(args, key)) for key in OPTION_FLAGS if getattr(args, key) is not None)
    opt.setdefault('phase', 'train' if args.gt_size is not None else 'test')
    if args.use_flow:
        opt['use_flow'] = True
    if args.lmdb:
        opt['io_backend'] = {'type': 'lmdb'}
    for item in args.set:
        key, sep, value = item.partition('=')
        if not sep or not key:
            parser.error(f'--set expects KEY=VALUE, got {item!r}')
        opt[key] = yaml.safe_load(value)
    try:
        check_option_keys(opt, cls.OPTION_KEYS, args.type)
    except ValueError as err:
        parser.error(str(err))
    if not any(opt.get(key) for key in ('dataroot', 'dataroot_lq', 'dataroot_gt')):
        parser.error(f'{args.type} needs its data: --dataroot (or --dataroot-lq and --dataroot-gt)')
    if 'num_frame' in cls.OPTION_KEYS and opt.get('num_frame') is None:
        parser.error(f'{args.type} needs --num-frame (frames per clip)')
    if opt['phase'] == 'train' and 'gt_size' in cls.OPTION_KEYS and opt.get('gt_size') is None:
        parser.error(f'{args.type} in phase train needs --gt-size (the training crop size)')
    return opt


def print_report(label, problems):
    """Every problem, one a line, and the notes grouped by kind (count and a first file)."""
    print(label)
    if problems.errors:
        print(f'  problems ({len(problems.errors)}):')
        for message in problems.errors:
            print(f'    {shown(message)}')
    grouped = OrderedDict()
    for note, name in problems.notes:
        grouped.setdefault(note, []).append(name)
    if grouped:
        print(f'  notes ({len(problems.notes)}):')
        for note, names in grouped.items():
            more = f' (+{len(names) - 1} more)' if len(names) > 1 else ''
            print(f'    {note}: {shown(names[0])}{more}')


def build_parser():
    parser = argparse.ArgumentParser(
        description='Check a deblurzoo dataset (every file, every sequence) and report all its problems at once.',
        epilog='exit status: 0 no problems, 1 problems found, 2 usage error')
    parser.add_argument('-opt', help='an option file: check every dataset of its datasets: section')
    parser.add_argument('--type', choices=sorted(deblurzoo_datasets()), help='the dataset class to check')
    parser.add_argument('--dataroot', help='the dataset folder (GoPro, DVD, HIDE, RealBlur)')
    parser.add_argument('--dataroot-lq', help='blurry frames: a folder (REDS) or an .lmdb (with --lmdb)')
    parser.add_argument('--dataroot-gt', help='sharp frames: a folder (REDS) or an .lmdb (with --lmdb)')
    parser.add_argument('--dataroot-flow', help='flows: a GoPro-layout root, or an .lmdb (with --lmdb)')
    parser.add_argument('--lmdb', action='store_true', help='io_backend lmdb (--dataroot-lq/-gt/-flow are .lmdb)')
    parser.add_argument('--split', help="the split folder (GoPro, HIDE, RealBlur: 'train' or 'test')")
    parser.add_argument(
        '--phase', choices=('train', 'val', 'test'), help="default: 'train' with --gt-size, else 'test'")
    parser.add_argument('--gt-size', type=int, help='the training crop size: smaller images are problems')
    parser.add_argument('--use-flow', action='store_true', help='GoProDataset: check the flows too')
    parser.add_argument('--num-frame', type=int, help='frames per clip (DVDDataset, REDSDeblurDataset)')
    parser.add_argument('--meta-info-file', help='the selection file the dataset takes as meta_info_file')
    parser.add_argument(
        '--set',
        action='append',
        default=[],
        metavar='KEY=VALUE',
        help='any other dataset option, the value read as YAML (e.g. partition=all, variant=R)')
    parser.add_argument(
        '--workers', type=int, default=0, help='read files in this many processes (default: 0, '
        'in this one)')
    return parser


def main(argv=None):
    """Run the checks; returns the exit status (0 clean, 1 problems; usage errors exit with 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.opt and not args.type:
        parser.error('give -opt OPTION_FILE and/or --type DATASET with its options')
    if args.workers < 0:
        parser.error(f'--workers must be >= 0, got {args.workers}')
    entries = []
    if args.opt:
        if not osp.isfile(args.opt):
            parser.error(f'option file not found: {shown(args.opt)}')
        try:
            entries += options_from_file(args.opt)
        except ValueError as err:
            parser.error(shown(str(err)))
    if args.type:
        entries.append(('command line', options_from_args(args, parser)))

    reports, num_errors, num_notes = [], 0, 0
    for key, opt in entries:
        if not isinstance(opt, dict) or 'type' not in opt:
            parser.error(f'dataset {key!r} of {args.opt} has no type')
        problems, label = check_dataset(opt, args.workers)
        reports.append((label, problems))
        num_errors += len(problems.errors)
        num_notes += len(problems.notes)
    print()
    for label, problems in reports:
        print_report(label, problems)
    verdict = 'OK' if num_errors == 0 else 'fix the problems before training'
    print(f'check_dataset: {len(reports)} dataset(s): {num_errors} problem(s), {num_notes} note(s): {verdict}')
    return 1 if num_errors else 0


if __name__ == '__main__':
    sys.exit(main())
