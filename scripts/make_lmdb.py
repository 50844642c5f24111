"""Pack a GoPro-layout folder into LMDBs (BasicSR's ``make_lmdb_from_imgs``) for ``GoProDataset``'s lmdb backend.

Usage::

    python scripts/make_lmdb.py --root datasets/GOPRO_Large --split train [test] [--blur-folder blur]
                                [--out datasets/GOPRO_Large/lmdb] [--name GOPRO] [--no-flow] [--force]

writes, per split, ``<out>/<name>_<split>_<blur-folder>.lmdb``, ``<name>_<split>_sharp.lmdb`` and -- when the
sequences have a ``flow`` folder (scripts/compute_flows.py) -- ``<name>_<split>_flow.lmdb``, all keyed
``<seq>/<frame>`` (e.g. ``GOPR0372_07_00/000047``) with the keys listed in each lmdb's ``meta_info.txt``. The folder
is validated first by the dataset's own scan (``deblurzoo.data.gopro_dataset.scan_gopro``). ``--name`` defaults to
the root folder's name without a trailing ``_Large`` (GOPRO_Large -> GOPRO, demo -> demo). Existing lmdbs are never
replaced unless ``--force`` is given. Importable without side effects (``pack_split``, ``main``).

Options for the dataset::

    io_backend: {type: lmdb}
    dataroot_lq: datasets/GOPRO_Large/lmdb/GOPRO_train_blur.lmdb
    dataroot_gt: datasets/GOPRO_Large/lmdb/GOPRO_train_sharp.lmdb
    dataroot_flow: datasets/GOPRO_Large/lmdb/GOPRO_train_flow.lmdb   # with use_flow: true
"""
import argparse
import os
import shutil
import sys
from os import path as osp


def default_name(root):
    """Name prefix from the root folder: 'GOPRO_Large' -> 'GOPRO', 'demo' -> 'demo'."""
    name = osp.basename(osp.normpath(osp.abspath(root)))
    return name[:-len('_Large')] if name.endswith('_Large') and len(name) > len('_Large') else name


def has_flows(root, split, flow_folder='flow'):
    """Whether any sequence of ``root/split`` has a ``flow_folder``."""
    split_dir = osp.join(root, split)
    seqs = os.listdir(split_dir) if osp.isdir(split_dir) else []
    return any(osp.isdir(osp.join(split_dir, seq, flow_folder)) for seq in seqs)


def _check_target(path, force):
    """Refuse an existing ``path`` unless ``force`` and it is an lmdb (then it is removed)."""
    if not osp.exists(path):
        return
    if not force:
        raise FileExistsError(f'{path} already exists; not overwriting it (pass --force to replace it)')
    if not osp.isfile(osp.join(path, 'data.mdb')):
        raise FileExistsError(f'{path} exists and is not an lmdb (no data.mdb); not removing it, even with --force')


def pack_split(root,
               split,
               out_dir,
               name=None,
               blur_folder='blur',
               sharp_folder='sharp',
               flow_folder='flow',
               use_flow=None,
               force=False,
               compress_level=1,
               check_only=False):
    """Pack one split into LMDBs.

    Args:
        root (str): GoPro-layout root (``GOPRO_Large``).
        split (str): Split folder ('train' or 'test').
        out_dir (str): Folder for the .lmdb folders (created if needed).
        name (str | None): File name prefix; None: :func:`default_name` of ``root``. Default: None.
        blur_folder (str): Blurry frames' folder ('blur' or 'blur_gamma'). Default: 'blur'.
        sharp_folder (str): Default: 'sharp'.
        flow_folder (str): Flows' folder. Default: 'flow'.
        use_flow (bool | None): Pack flows; None: if any sequence has a ``flow_folder``. Default: None.
        force (bool): Replace existing lmdbs. Default: False.
        compress_level (int): PNG compression level of the stored images. Default: 1 (BasicSR's).
        check_only (bool): Only validate the folder and the targets; write nothing. Default: False.

    Returns:
        dict: {'blur': path, 'sharp': path[, 'flow': path]} of the lmdbs written (or to be written).
    """
    # imported here (--help stays fast); deblurzoo first: it patches BasicSR 1.4.2 so that basicsr imports
    from deblurzoo.data.gopro_dataset import scan_gopro
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    name = default_name(root) if name is None else name
    if use_flow is None:
        use_flow = has_flows(root, split, flow_folder)
    samples = scan_gopro(root, split, blur_folder, sharp_folder, flow_folder=flow_folder if use_flow else None)
    if use_flow:
        npy = [s['flow_path'] for s in samples if not s['flow_path'].endswith('.png')]
        if npy:
            raise ValueError(f'{len(npy)} flow files are not PNG (e.g. {npy[0]}); an lmdb stores flow PNGs written by '
                             'flow_util.write_flow (scripts/compute_flows.py)')
    kinds = {blur_folder: 'lq_path', sharp_folder: 'gt_path'}
    if use_flow:
        kinds['flow'] = 'flow_path'
    targets = {kind: osp.join(out_dir, f'{name}_{split}_{kind}.lmdb') for kind in kinds}
    for path in targets.values():  # all checked before anything is written or removed
        _check_target(path, force)
    roles = {blur_folder: 'blur', sharp_folder: 'sharp', 'flow': 'flow'}
    made = {roles[kind]: path for kind, path in targets.items()}
    if check_only:
        return made

    os.makedirs(out_dir, exist_ok=True)
    data_path = osp.join(root, split)
    keys = [s['key'] for s in samples]
    for kind, field in kinds.items():
        if osp.exists(targets[kind]):
            shutil.rmtree(targets[kind])
        rel_paths = [osp.relpath(s[field], data_path) for s in samples]
        # lmdb reserves (virtually) map_size bytes; re-encoded PNGs stay well below 4x the source files
        map_size = 4 * sum(osp.getsize(s[field]) for s in samples) + (64 << 20)
        make_lmdb_from_imgs(data_path, targets[kind], rel_paths, keys, compress_level=compress_level, map_size=map_size)
    return made


def main(argv=None):
    """Command line entry; returns the {split: {kind: lmdb path}} written."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', required=True, help='GoPro-layout root, e.g. datasets/GOPRO_Large')
    parser.add_argument('--split', nargs='+', default=['train', 'test'], help='split folder(s) (default: train test)')
    parser.add_argument('--out', default=None, help='output folder (default: <root>/lmdb)')
    parser.add_argument('--name', default=None, help='lmdb name prefix (default: the root folder name, minus _Large)')
    parser.add_argument('--blur-folder', default='blur', help="'blur' or 'blur_gamma' (default: blur)")
    parser.add_argument('--sharp-folder', default='sharp')
    parser.add_argument('--flow-folder', default='flow')
    parser.add_argument('--no-flow', action='store_true', help='do not pack flows even if present')
    parser.add_argument('--compress-level', type=int, default=1)
    parser.add_argument('--force', action='store_true', help='replace existing lmdbs')
    args = parser.parse_args(argv)
    out = osp.join(args.root, 'lmdb') if args.out is None else args.out
    kwargs = dict(
        name=args.name,
        blur_folder=args.blur_folder,
        sharp_folder=args.sharp_folder,
        flow_folder=args.flow_folder,
        use_flow=False if args.no_flow else None,
        force=args.force,
        compress_level=args.compress_level)
    for split in args.split:  # every split validated (folders, existing lmdbs) before anything is written
        pack_split(args.root, split, out, check_only=True, **kwargs)
    return {split: pack_split(args.root, split, out, **kwargs) for split in args.split}


if __name__ == '__main__':
    try:
        main()
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        sys.exit(f'make_lmdb.py: error: {error}')
