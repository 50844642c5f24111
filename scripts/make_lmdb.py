"""Pack a GoPro-, DVD- or REDS-layout folder into LMDBs (BasicSR's LMDB format) for the lmdb backend.

GoPro (``GoProDataset``), the default layout. Usage::

    python scripts/make_lmdb.py --root datasets/GOPRO_Large --split train [test] [--blur-folder blur]
                                [--out datasets/GOPRO_Large/lmdb] [--name GOPRO] [--no-flow] [--force]

writes, per split, ``<out>/<name>_<split>_<blur-folder>.lmdb``, ``<name>_<split>_sharp.lmdb`` and -- when the
sequences have a ``flow`` folder (scripts/compute_flows.py) -- ``<name>_<split>_flow.lmdb``, all keyed
``<seq>/<frame>`` (e.g. ``GOPR0372_07_00/000047``) with the keys listed in each lmdb's ``meta_info.txt``. The folder
is validated first by the dataset's own scan (``deblurzoo.data.gopro_dataset.scan_gopro``). ``--name`` defaults to
the root folder's name without a trailing ``_Large`` (GOPRO_Large -> GOPRO, demo -> demo). Existing lmdbs are never
replaced unless ``--force`` is given. Importable without side effects (``pack_split``, ``pack_video_partition``,
``write_lmdb``, ``main``).

Every lmdb is written into a temporary folder beside its target (``.<name>.lmdb.<random>.tmp``), verified (every key
present, the data file whole) and only then renamed into place; a replaced lmdb (``--force``) is removed only after
its successor is in place. On any failure (an unreadable or corrupt image, a full disk) the temporary folder is
removed, an existing lmdb is left as it was, and the error names the target and the cause. Images are read as bytes
and decoded in memory (``deblurzoo.data.data_util.decode_stored``), so any file name works; keys are stored as UTF-8
(non-UTF-8 names with surrogate escapes), and BasicSR's LMDB format is kept (a PNG per key, ``meta_info.txt`` lines
``<key>.png (h,w,c) <compress level>``).

Options for the dataset::

    io_backend: {type: lmdb}
    dataroot_lq: datasets/GOPRO_Large/lmdb/GOPRO_train_blur.lmdb
    dataroot_gt: datasets/GOPRO_Large/lmdb/GOPRO_train_sharp.lmdb
    dataroot_flow: datasets/GOPRO_Large/lmdb/GOPRO_train_flow.lmdb   # with use_flow: true

DVD (``DVDDataset``, ``DVDTestDataset``): ``--layout dvd``. Usage::

    python scripts/make_lmdb.py --layout dvd --root datasets/DeepVideoDeblurring_Dataset/quantitative_datasets
                                --partition train [test] [all] [--meta-info-file <test sequences>]
                                [--lq-folder input] [--gt-folder GT] [--out ...] [--name DVD] [--force]

writes, per partition (``deblurzoo.data.dvd_dataset.select_sequences``: 'test' is the sequences of
``--meta-info-file``, by default DVD's 10 test sequences; 'train' every other one; 'all' all),
``<out>/<name>_<partition>_<lq-folder>.lmdb`` and ``<name>_<partition>_<gt-folder>.lmdb`` (``DVD_train_input.lmdb``,
``DVD_train_GT.lmdb``), keyed ``<seq>/<frame>`` (``IMG_0001/00042``), after validating the sequences with
``deblurzoo.data.dvd_dataset.scan_video_sequences``. Frames are stored as PNGs (BasicSR's), so an lmdb of JPEG frames
decodes to the same pixels as the JPEGs. ``--out`` defaults to ``lmdb`` beside the root (not inside it: every folder
in the root is a sequence); ``--name`` to 'DVD' for a ``quantitative_datasets`` root, else as for GoPro. Any folder of
``<seq>/{<lq-folder>,<gt-folder>}/<frame>.<png|jpg>`` sequences works (e.g. ``--root datasets/GOPRO_Large/train
--lq-folder blur --gt-folder sharp --partition all``). Options for the datasets::

    io_backend: {type: lmdb}
    dataroot_lq: datasets/DeepVideoDeblurring_Dataset/lmdb/DVD_train_input.lmdb
    dataroot_gt: datasets/DeepVideoDeblurring_Dataset/lmdb/DVD_train_GT.lmdb

REDS (``REDSDeblurDataset``, ``REDSDeblurTestDataset``): ``--layout reds``. Usage::

    python scripts/make_lmdb.py --layout reds --root datasets/REDS --split train [val] [--out datasets/REDS/lmdb]
                                [--name REDS] [--force]

writes, per split, ``<out>/<name>_<split>_blur.lmdb`` and ``<name>_<split>_sharp.lmdb`` (``REDS_train_blur.lmdb``,
``REDS_train_sharp.lmdb``) from ``<root>/<split>_blur`` (or ``<split>_blur_jpeg``) and ``<root>/<split>_sharp``
(``deblurzoo.data.reds_dataset.reds_folders``), keyed ``<clip>/<frame>`` (``000/00000042``), after validating the
clips with ``deblurzoo.data.reds_dataset.scan_reds``. ``--split`` defaults to train and val, ``--out`` to
``<root>/lmdb``, ``--name`` to the root folder's name. Keep the splits in separate lmdbs: REDS' train and val clips
share names ('000'...). Options for the datasets::

    io_backend: {type: lmdb}
    dataroot_lq: datasets/REDS/lmdb/REDS_train_blur.lmdb
    dataroot_gt: datasets/REDS/lmdb/REDS_train_sharp.lmdb
"""
import argparse
import errno
import os
import shutil
import sys
import tempfile
from os import path as osp

WRITES = """what it writes (keys listed in each lmdb's meta_info.txt; existing lmdbs are replaced only with --force):
  gopro: <out>/<name>_<split>_{<blur-folder>,sharp[,flow]}.lmdb, keys <seq>/<frame> (e.g. GOPR0372_07_00/000047);
         --out default <root>/lmdb, --name default the root's name minus _Large (GOPRO)
  dvd:   <out>/<name>_<partition>_{<lq-folder>,<gt-folder>}.lmdb (DVD_train_input.lmdb), keys <seq>/<frame>;
         --out default lmdb beside the root, --name default DVD for a quantitative_datasets root
  reds:  <out>/<name>_<split>_{blur,sharp}.lmdb (REDS_train_blur.lmdb) from <root>/<split>_blur (or
         <split>_blur_jpeg) and <root>/<split>_sharp, keys <clip>/<frame> (e.g. 000/00000042);
         --split default train val, --out default <root>/lmdb, --name default the root's name (REDS)"""


def default_name(root):
    """Name prefix from the root folder: 'GOPRO_Large' -> 'GOPRO', 'demo' -> 'demo'."""
    name = osp.basename(osp.normpath(osp.abspath(root)))
    return name[:-len('_Large')] if name.endswith('_Large') and len(name) > len('_Large') else name


def has_flows(root, split, flow_folder='flow'):
    """Whether any sequence of ``root/split`` has a ``flow_folder``."""
    split_dir = osp.join(root, split)
    seqs = os.listdir(split_dir) if osp.isdir(split_dir) else []
    return any(osp.isdir(osp.join(split_dir, seq, flow_folder)) for seq in seqs)


def _check_keys(keys):
    """Refuse keys that BasicSR's meta_info.txt cannot hold (its fields are separated by white space)."""
    from deblurzoo.data.layout_scan import listing
    spaced = [key for key in keys if any(c.isspace() for c in key)]
    if spaced:
        raise ValueError(f'{len(spaced)} key(s) contain white space, which an lmdb\'s meta_info.txt (fields separated '
                         f'by spaces) cannot hold: {listing(spaced)}; rename those files')


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
    _check_keys(s['key'] for s in samples)
    roles = {blur_folder: 'blur', sharp_folder: 'sharp', 'flow': 'flow'}
    made = {roles[kind]: path for kind, path in targets.items()}
    if check_only:
        return made

    os.makedirs(out_dir, exist_ok=True)
    keys = [s['key'] for s in samples]
    for kind, field in kinds.items():
        write_lmdb(targets[kind], [s[field] for s in samples], keys, compress_level)
    return made


def _put_all(env, items, compress_level, batch=1000):
    """Store every (key, path) of ``items`` in ``env`` as BasicSR does (the image re-encoded as PNG), committing
    every ``batch`` images and growing the map when it is full; returns the meta_info.txt lines."""
    import cv2
    import lmdb
    from deblurzoo.data.data_util import decode_stored
    from deblurzoo.data.safe_io import encode_image, read_bytes

    lines = []
    for start in range(0, len(items), batch):
        chunk = []
        for key, path in items[start:start + batch]:
            img = decode_stored(read_bytes(path), path)  # (h, w) or (h, w, c) as stored; errors name the file
            chunk.append((key.encode('utf-8', 'surrogateescape'),
                          encode_image('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level], path)))
            h, w = img.shape[:2]
            lines.append(f'{key}.png ({h},{w},{1 if img.ndim == 2 else img.shape[2]}) {compress_level}\n')
        while True:
            try:
                with env.begin(write=True) as txn:
                    for key, value in chunk:
                        txn.put(key, value)
                break
            except lmdb.MapFullError:  # the transaction was aborted: grow the map and write the chunk again
                env.set_mapsize(2 * env.info()['map_size'])
    return lines


def write_lmdb(target, paths, keys, compress_level=1):
    """Write the images ``paths`` into the lmdb ``target`` under ``keys``, atomically and verified.

    The lmdb is built in a temporary folder beside ``target``, synced, checked (every key in it, its data file whole:
    ``safe_io.check_lmdb``) and renamed to ``target``; an existing ``target`` is replaced only then. On any failure the
    temporary folder is removed, ``target`` is left as it was and an OSError names ``target`` and the cause.
    """
    import lmdb
    from deblurzoo.data.safe_io import ENOSPC_TEXT, check_lmdb, default_mode, disk_full, shown, write_bytes_atomic

    _check_keys(keys)
    folder, name = osp.split(osp.abspath(target))
    tmp = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.tmp', dir=folder)
    old = None
    try:
        os.chmod(tmp, default_mode(target, directory=True))
        # lmdb reserves map_size bytes of address space and grows the file as it is written; _put_all grows the map
        env = lmdb.open(tmp, map_size=2 * sum(osp.getsize(p) for p in paths) + (64 << 20))
        try:
            lines = _put_all(env, list(zip(keys, paths)), compress_level)
            env.sync(True)
            entries = env.stat()['entries']
        finally:
            env.close()
        if entries != len(set(keys)):
            raise OSError(f'{entries} keys stored, {len(set(keys))} expected')
        write_bytes_atomic(osp.join(tmp, 'meta_info.txt'), ''.join(lines).encode('utf-8', 'surrogateescape'))
        check_lmdb(tmp)
        if osp.exists(target):
            old = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.old', dir=folder)
            os.rename(target, osp.join(old, name))
        os.rename(tmp, target)
        tmp = None
    except (OSError, ValueError, lmdb.Error) as err:
        if old is not None and not osp.exists(target):  # put the replaced lmdb back
            os.rename(osp.join(old, name), target)
        cause = str(err)
        if isinstance(err, lmdb.Error) and ENOSPC_TEXT not in cause and disk_full(folder):
            cause += f' ({ENOSPC_TEXT})'  # lmdb reports a failed write of a full disk as an I/O error
        raise OSError(errno.ENOSPC if ENOSPC_TEXT in cause else getattr(err, 'errno', None) or errno.EIO,
                      f'cannot write the lmdb {shown(target)}: {cause}; nothing was written') from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def default_video_name(root):
    """Name prefix for ``--layout dvd``: 'DVD' for a ``quantitative_datasets`` root, else :func:`default_name`."""
    name = osp.basename(osp.normpath(osp.abspath(root)))
    return 'DVD' if name == 'quantitative_datasets' else default_name(root)


def _write_pair(made, sources, keys, out_dir, force, compress_level, check_only):
    """Check every target lmdb of ``made`` ({role: path}), then (unless ``check_only``) write each role's images
    ``sources[role]`` (paths) under ``keys``; returns ``made``."""
    for path in made.values():  # all checked before anything is written or removed
        _check_target(path, force)
    _check_keys(keys)
    if check_only:
        return made
    os.makedirs(out_dir, exist_ok=True)
    for role, paths in sources.items():
        write_lmdb(made[role], paths, keys, compress_level)
    return made


def pack_video_partition(root,
                         partition,
                         out_dir,
                         name=None,
                         lq_folder='input',
                         gt_folder='GT',
                         meta_info_file=None,
                         force=False,
                         compress_level=1,
                         check_only=False):
    """Pack one partition of a folder of video sequences (DVD layout) into two LMDBs.

    Args:
        root (str): The folder of ``<seq>/{<lq_folder>,<gt_folder>}/<frame>`` sequences (DVD's
            ``quantitative_datasets``).
        partition (str): 'train', 'test' or 'all' (``deblurzoo.data.dvd_dataset.select_sequences``).
        out_dir (str): Folder for the .lmdb folders (created if needed).
        name (str | None): File name prefix; None: :func:`default_video_name` of ``root``. Default: None.
        lq_folder (str): Blurry frames' folder in each sequence. Default: 'input'.
        gt_folder (str): Sharp frames' folder in each sequence. Default: 'GT'.
        meta_info_file (str | None): The test sequences; None: DVD's. Default: None.
        force (bool): Replace existing lmdbs. Default: False.
        compress_level (int): PNG compression level of the stored images. Default: 1 (BasicSR's).
        check_only (bool): Only validate the folder and the targets; write nothing. Default: False.

    Returns:
        dict: {'lq': path, 'gt': path} of the lmdbs written (or to be written).
    """
    # imported here (--help stays fast); deblurzoo first: it patches BasicSR 1.4.2 so that basicsr imports
    from deblurzoo.data.dvd_dataset import scan_partition

    name = default_video_name(root) if name is None else name
    frames = scan_partition(root, partition, meta_info_file, lq_folder, gt_folder)  # {seq: [file names]}
    folders = {'lq': lq_folder, 'gt': gt_folder}
    made = {role: osp.join(out_dir, f'{name}_{partition}_{folder}.lmdb') for role, folder in folders.items()}
    keys = [f'{seq}/{osp.splitext(frame)[0]}' for seq, names in frames.items() for frame in names]
    sources = {
        role: [osp.join(root, seq, folder, frame) for seq, names in frames.items() for frame in names]
        for role, folder in folders.items()
    }
    return _write_pair(made, sources, keys, out_dir, force, compress_level, check_only)


def pack_reds_split(root, split, out_dir, name=None, force=False, compress_level=1, check_only=False):
    """Pack one split of a REDS folder into two LMDBs.

    Args:
        root (str): The REDS folder (``datasets/REDS``, holding ``<split>_blur`` and ``<split>_sharp``).
        split (str): 'train' or 'val' (any ``<split>_{blur,sharp}`` pair).
        out_dir (str): Folder for the .lmdb folders (created if needed).
        name (str | None): File name prefix; None: :func:`default_name` of ``root`` ('REDS'). Default: None.
        force (bool): Replace existing lmdbs. Default: False.
        compress_level (int): PNG compression level of the stored images. Default: 1 (BasicSR's).
        check_only (bool): Only validate the folders and the targets; write nothing. Default: False.

    Returns:
        dict: {'lq': path, 'gt': path} of the lmdbs written (or to be written): ``<out_dir>/<name>_<split>_blur.lmdb``
        and ``<name>_<split>_sharp.lmdb``.
    """
    # imported here (--help stays fast); deblurzoo first: it patches BasicSR 1.4.2 so that basicsr imports
    from deblurzoo.data.reds_dataset import reds_folders, scan_reds

    name = default_name(root) if name is None else name
    folders = reds_folders(root, split)
    clips = scan_reds(folders['lq'], folders['gt'])  # {clip: [{'lq_path', 'gt_path', 'frame'}]}
    made = {role: osp.join(out_dir, f'{name}_{split}_{kind}.lmdb') for role, kind in (('lq', 'blur'), ('gt', 'sharp'))}
    keys = [f"{clip}/{frame['frame']}" for clip, frames in clips.items() for frame in frames]
    sources = {role: [frame[f'{role}_path'] for frames in clips.values() for frame in frames] for role in ('lq', 'gt')}
    return _write_pair(made, sources, keys, out_dir, force, compress_level, check_only)


def _main_reds(args, parser):
    """``--layout reds``: returns {split: {'lq': path, 'gt': path}}."""
    if args.partition is not None or args.meta_info_file is not None:
        parser.error('--partition and --meta-info-file are for --layout dvd; --layout reds takes --split')
    splits = args.split or ['train', 'val']
    out = osp.join(args.root, 'lmdb') if args.out is None else args.out
    kwargs = dict(name=args.name, force=args.force, compress_level=args.compress_level)
    for split in splits:  # every split validated (folders, existing lmdbs) before anything is written
        pack_reds_split(args.root, split, out, check_only=True, **kwargs)
    return {split: pack_reds_split(args.root, split, out, **kwargs) for split in splits}


def _main_video(args, parser):
    """``--layout dvd``: returns {partition: {'lq': path, 'gt': path}}."""
    if args.split is not None:
        parser.error('--split is for --layout gopro; --layout dvd takes --partition')
    out = osp.join(osp.dirname(osp.normpath(osp.abspath(args.root))), 'lmdb') if args.out is None else args.out
    kwargs = dict(
        name=args.name,
        lq_folder=args.lq_folder,
        gt_folder=args.gt_folder,
        meta_info_file=args.meta_info_file,
        force=args.force,
        compress_level=args.compress_level)
    partitions = args.partition or ['train', 'test']
    for partition in partitions:  # every partition validated (folders, existing lmdbs) before anything is written
        pack_video_partition(args.root, partition, out, check_only=True, **kwargs)
    return {partition: pack_video_partition(args.root, partition, out, **kwargs) for partition in partitions}


def main(argv=None):
    """Command line entry; returns the {split: {kind: lmdb path}} (dvd: {partition: {'lq', 'gt': path}}; reds:
    {split: {'lq', 'gt': path}}) written."""
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], epilog=WRITES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--layout',
        choices=('gopro', 'dvd', 'reds'),
        default='gopro',
        help='gopro: <root>/<split>/<seq>/{blur,sharp,flow}; dvd: <root>/<seq>/{input,GT}; reds: '
        '<root>/<split>_{blur,sharp}/<clip> (default: gopro)')
    parser.add_argument(
        '--root',
        required=True,
        help='GoPro-layout root, e.g. datasets/GOPRO_Large (dvd: the folder of sequences, e.g. '
        'datasets/DeepVideoDeblurring_Dataset/quantitative_datasets; reds: datasets/REDS)')
    parser.add_argument(
        '--split',
        nargs='+',
        default=None,
        help='gopro: split folder(s) (default: train test); reds: split(s) (default: train val)')
    parser.add_argument(
        '--partition',
        nargs='+',
        choices=('train', 'test', 'all'),
        default=None,
        help='dvd: partition(s) (default: train test)')
    parser.add_argument(
        '--meta-info-file',
        default=None,
        help="dvd: the test sequences, one a line (default: DVD's, meta_info_DVD_test.txt)")
    parser.add_argument('--lq-folder', default='input', help='dvd: blurry frames\' folder (default: input)')
    parser.add_argument('--gt-folder', default='GT', help='dvd: sharp frames\' folder (default: GT)')
    parser.add_argument('--out', default=None, help='output folder (default: <root>/lmdb; dvd: lmdb beside the root)')
    parser.add_argument(
        '--name',
        default=None,
        help='lmdb name prefix (default: the root folder name, minus _Large; dvd: DVD; reds: the root '
        'folder name, REDS)')
    parser.add_argument('--blur-folder', default='blur', help="gopro: 'blur' or 'blur_gamma' (default: blur)")
    parser.add_argument('--sharp-folder', default='sharp', help='gopro')
    parser.add_argument('--flow-folder', default='flow', help='gopro')
    parser.add_argument('--no-flow', action='store_true', help='gopro: do not pack flows even if present')
    parser.add_argument('--compress-level', type=int, default=1)
    parser.add_argument('--force', action='store_true', help='replace existing lmdbs')
    args = parser.parse_args(argv)
    if args.layout == 'dvd':
        return _main_video(args, parser)
    if args.layout == 'reds':
        return _main_reds(args, parser)
    if args.partition is not None or args.meta_info_file is not None:
        parser.error('--partition and --meta-info-file are for --layout dvd')
    args.split = args.split or ['train', 'test']
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
    except (OSError, ValueError) as error:
        sys.exit(f'make_lmdb.py: error: {error}')
