"""The folder-scan and validation component every deblurzoo dataset uses: listing a folder's frames, pairing blurry
with sharp frames by name, selecting sequences, reading key lists (meta_info files, LMDBs' ``meta_info.txt``) and
checking sizes.

Each dataset file holds its own layout (``scan_gopro``, ``scan_reds`` ...) written with these functions; errors name
the folder, sequence, key or file at fault. Every function takes ``problems`` (a ``data_util.Problems``) where a
problem can be skipped: with it the problem is recorded and what is at fault left out (``scripts/check_dataset.py``),
without it the first problem is raised.

File names are handled as ``str`` (non-UTF-8 bytes kept as surrogate escapes, Python's default on POSIX) and shown
in messages through ``safe_io.shown``. No torch, no BasicSR.
"""
import os
import re
from collections import OrderedDict
from os import path as osp

from .data_util import decode_stored, report
from .flow_util import flow_from_bytes
from .safe_io import check_lmdb, image_header_size, read_bytes, read_head, shown

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
FLOW_EXTENSIONS = ('.png', '.npy')
SHOWN = 5  # how many names an error message lists


def listing(names):
    """'a, b, c (+N more)' for error messages (names escaped where they cannot be printed)."""
    names = [shown(name) for name in names]
    more = f' (+{len(names) - SHOWN} more)' if len(names) > SHOWN else ''
    return ', '.join(names[:SHOWN]) + more


def natural_key(name):
    """Sort key ordering '2.jpg' before '10.jpg' (zero-padded names sort as strings do); ties ('1', '01') by name."""
    return [int(token) if token.isdigit() else token for token in re.split(r'(\d+)', name)], name


def frames_in(folder, extensions=IMG_EXTENSIONS):
    """{frame stem: file name} of the files with ``extensions`` in ``folder`` (None if the folder does not exist)."""
    if not osp.isdir(folder):
        return None
    frames = {}
    for name in os.listdir(folder):
        stem, ext = osp.splitext(name)
        if ext.lower() in extensions and osp.isfile(osp.join(folder, name)):
            frames[stem] = name
    return frames


def sub_folders(root):
    """Sorted names of the folders in ``root`` not starting with '.'."""
    return sorted(d for d in os.listdir(root) if not d.startswith('.') and osp.isdir(osp.join(root, d)))


def compare_frames(seq, lq_names, gt_names, lq_folder, gt_folder, where, problems=None, dirs=None):
    """The frame names in both ``lq_names`` and ``gt_names``.

    Unless both sets are equal and non-empty, raises a ValueError naming ``seq`` and the unpaired frames (``where``:
    the sequence's place) or, with ``problems``, records one message per unpaired frame (``dirs``: the (lq, gt)
    folders or '<lmdb>:<seq>' they are named in) and returns the paired ones.
    """
    lq_names, gt_names = set(lq_names), set(gt_names)
    if lq_names != gt_names:
        if len(lq_names) != len(gt_names):
            head = f'{len(lq_names)} {lq_folder} frames but {len(gt_names)} {gt_folder} frames'
        else:
            head = f'{lq_folder} and {gt_folder} frame names differ'
        missing = [(gt_folder, sorted(lq_names - gt_names, key=natural_key)),
                   (lq_folder, sorted(gt_names - lq_names, key=natural_key))]
        tail = '; '.join(f'missing in {folder}: {listing(names)}' for folder, names in missing if names)
        lq_dir, gt_dir = dirs or (lq_folder, gt_folder)
        found_in = {gt_folder: lq_dir, lq_folder: gt_dir}
        where_missing = {gt_folder: gt_dir, lq_folder: lq_dir}
        report(problems, ValueError(f'sequence {shown(seq)}: {head} ({shown(where)}); {tail}'), [
            f'{shown(osp.join(found_in[folder], name))}: unpaired frame of sequence {shown(seq)}: no {folder} frame '
            f'{shown(name)} in {shown(where_missing[folder])}' for folder, names in missing for name in names
        ])
    elif not lq_names:
        report(problems, FileNotFoundError(f'sequence {shown(seq)} has no frames ({shown(where)})'))
    return lq_names & gt_names


def sequence_frames(root, seq, lq_folder, gt_folder, hint='', problems=None):
    """{frame stem: file name} of ``<root>/<seq>``'s frames, validated: both folders exist and hold the same, non-empty
    set of image names; errors name the sequence and the unpaired frames (``hint``: the expected layout).

    With ``problems`` (a ``data_util.Problems``) the problems are recorded instead and the paired frames returned
    (None if there are none).
    """
    listed = {}
    for folder in (lq_folder, gt_folder):
        listed[folder] = frames_in(osp.join(root, seq, folder), IMG_EXTENSIONS)
        if listed[folder] is None:
            report(
                problems,
                FileNotFoundError(f"sequence {shown(seq)} has no '{folder}' folder: "
                                  f"{shown(osp.join(root, seq, folder))} not found"
                                  f"{'; expected ' + hint if hint else ''}"))
            return None
    paired = compare_frames(seq, listed[lq_folder].values(), listed[gt_folder].values(), lq_folder, gt_folder,
                            f'in {osp.join(root, seq)}', problems,
                            (osp.join(root, seq, lq_folder), osp.join(root, seq, gt_folder)))
    return {stem: name for stem, name in listed[lq_folder].items() if name in paired} or None


def list_sequences(root, layout):
    """Sorted names of the sequence folders in ``root`` (every sub-folder not starting with '.').

    Raises a FileNotFoundError naming ``root`` and the expected ``layout`` if it does not exist or holds no folder.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'video dataroot not found: {shown(root)}; expected {layout}')
    seqs = sub_folders(root)
    if not seqs:
        raise FileNotFoundError(f'no sequence folders in {shown(root)}; expected {layout}')
    return seqs


def pick_sequences(found, sequences, where, problems=None):
    """``sequences`` among ``found`` (the sequences of ``where``, named in errors), in their order, duplicates dropped;
    every one must be in ``found`` (with ``problems``, a ``data_util.Problems``, the others are recorded there and
    left out). None: all of ``found``."""
    if sequences is None:
        return list(found)
    sequences = list(OrderedDict.fromkeys(sequences))
    found_set = set(found)
    unknown = [s for s in sequences if s not in found_set]
    if unknown:
        report(
            problems,
            ValueError(f'{len(unknown)} sequence(s) not found in {shown(where)}: {listing(unknown)} '
                       f'(it has {len(found)}: {listing(found)})'),
            [f'{shown(where)}: has no sequence {shown(s)} (selected)' for s in unknown])
        sequences = [s for s in sequences if s in found_set]
    if not sequences:
        raise ValueError(f'no sequences selected in {shown(where)}')
    return sequences


def split_key(key, source):
    """``'<seq>/<frame>'`` -> ``(seq, frame)``; ``source`` names where the key came from in the error."""
    seq, sep, frame = key.rpartition('/')
    if not sep or not seq or not frame:
        raise ValueError(f"{shown(source)}: malformed key '{shown(key)}', expected '<seq>/<frame>' such as "
                         "'GOPR0372_07_00/000047'")
    return seq, frame


def read_keys(meta_info_file, with_shapes=False):
    """Keys listed in a meta-info txt file: the first token of each non-empty line, image extension dropped.

    Reads both a plain key list (``GOPR0372_07_00/000047``) and BasicSR's LMDB ``meta_info.txt``
    (``GOPR0372_07_00/000047.png (720,1280,3) 1``). Lines starting with ``#`` are comments. The file is read as UTF-8
    with undecodable bytes kept as surrogate escapes, as file names are.

    Args:
        meta_info_file (str): Path of the txt file.
        with_shapes (bool): Also return ``{key: (h, w)}`` from the lines' ``(h,w,c)`` field (BasicSR's LMDB
            meta_info.txt). Default: False.

    Returns:
        list[str] | tuple[list[str], dict]: Keys in file order (and their shapes).
    """
    if not osp.isfile(meta_info_file):
        raise FileNotFoundError(f'meta info file not found: {shown(meta_info_file)}')
    keys, shapes = [], {}
    text = read_bytes(meta_info_file).decode('utf-8', 'surrogateescape')
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith('#'):
            continue
        key, ext = osp.splitext(tokens[0])
        if ext.lower() not in IMG_EXTENSIONS + FLOW_EXTENSIONS:
            key = tokens[0]
        keys.append(key)
        if with_shapes and len(tokens) > 1:
            try:
                shape = tokens[1].strip('()').split(',')
                shapes[key] = (int(shape[0]), int(shape[1]))
            except (ValueError, IndexError):
                raise ValueError(f'{shown(meta_info_file)}:{number}: malformed shape {shown(tokens[1])!r}, expected '
                                 '(h,w,c)') from None
    if not keys:
        raise ValueError(f'meta info file {shown(meta_info_file)} lists no keys')
    return (keys, shapes) if with_shapes else keys


def png_size(path):
    """(h, w) of an image file from its header (PNG, JPEG, BMP: ``safe_io.image_header_size``, the file's first bytes
    only); other formats and ``.npy`` flows are decoded. Errors name the file."""
    size = image_header_size(read_head(path))
    if size is not None:
        return size
    content = read_bytes(path)
    if path.endswith('.npy'):
        return flow_from_bytes(content, path).shape[:2]
    return decode_stored(content, path).shape[:2]


def lmdb_keys(path, option):
    """Keys and shapes from an LMDB folder's meta_info.txt, after checking that its data file is whole
    (``safe_io.check_lmdb``); ``option`` names the YAML key in errors."""
    if not path:
        raise ValueError(f"io_backend type 'lmdb' needs the option '{option}' (an .lmdb folder from "
                         'scripts/make_lmdb.py)')
    if not osp.exists(path):
        raise FileNotFoundError(f'{option}: lmdb not found: {shown(path)} (make it with scripts/make_lmdb.py)')
    if not osp.isfile(osp.join(path, 'data.mdb')):
        raise ValueError(f'{option}: {shown(path)} is not an lmdb folder (no data.mdb in it; make one with '
                         'scripts/make_lmdb.py)')
    if not osp.isfile(osp.join(path, 'meta_info.txt')):
        raise FileNotFoundError(f'{option}: {shown(path)} has no meta_info.txt listing its keys (make the lmdb with '
                                'scripts/make_lmdb.py)')
    check_lmdb(path, option)
    return read_keys(osp.join(path, 'meta_info.txt'), with_shapes=True)


def lmdb_sequences(lq_keys, gt_keys, lq_source, gt_source, problems=None):
    """{sequence: its frames (key stems), sorted} from two lmdbs' ``<seq>/<frame>`` keys, which must pair up (with
    ``problems``, a ``data_util.Problems``, unpaired frames are recorded there and left out)."""
    grouped = {}
    for keys, source in ((lq_keys, lq_source), (gt_keys, gt_source)):
        grouped[source] = {}
        for key in keys:
            seq, frame = split_key(key, source)
            grouped[source].setdefault(seq, []).append(frame)
    lq, gt = grouped[lq_source], grouped[gt_source]
    paired = OrderedDict()
    for seq in sorted(set(lq) | set(gt)):
        frames = compare_frames(seq, lq.get(seq, ()), gt.get(seq, ()), 'lq', 'gt', f'lmdbs {lq_source} and {gt_source}',
                                problems, (f'{lq_source}:{seq}', f'{gt_source}:{seq}'))
        if frames:
            paired[seq] = sorted(frames, key=natural_key)
    return paired


# ---------------------------------------------------------------- sizes


def size_problems(sizes, min_size=None):
    """Messages on ``sizes``, [(name, (h, w) or None: unknown)] of images that must have one size, lq first: one per
    image whose size differs from the first one's, and one if that is smaller than ``min_size`` (the training crop,
    None: no minimum)."""
    sizes = [(name, tuple(size)) for name, size in sizes if size is not None]
    if not sizes:
        return []
    (lq_name, lq_size), *others = sizes
    messages = [
        f'size mismatch: {shown(lq_name)} is {lq_size[0]}x{lq_size[1]} (h x w) but {shown(name)} is '
        f'{size[0]}x{size[1]}' for name, size in others if size != lq_size
    ]
    if min_size is not None and min(lq_size) < min_size:
        messages.append(f'{shown(lq_name)} is {lq_size[0]}x{lq_size[1]} (h x w), smaller than gt_size {min_size}; '
                        'remove it (meta_info_file) or lower gt_size')
    return messages


def check_sizes(groups, min_size=None, problems=None):
    """Check every group of ``groups``, each a list of (name, (h, w) or None) that must share one size (a sample's
    images, a sequence's frames), on construction: :func:`size_problems` raised or recorded in ``problems``."""
    for sizes in groups:
        messages = size_problems(sizes, min_size)
        if messages:
            report(problems, ValueError(messages[0]), messages)
