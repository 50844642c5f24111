"""Helpers shared by deblurzoo's datasets: option checking, the one image decoder, and the problem collector that
lets a dataset report every problem of its folder at once (``scripts/check_dataset.py``).

This module needs numpy, OpenCV and tqdm only (no torch, no BasicSR).
"""
import difflib
import multiprocessing

import cv2
import numpy as np
from tqdm import tqdm

from .safe_io import decode_bytes, shown

# keys BasicSR's pipeline itself reads from a dataset's options (dataloader, sampler, prefetcher, option parser)
BASICSR_DATASET_KEYS = frozenset({
    'name', 'type', 'phase', 'scale', 'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio',
    'prefetch_mode', 'pin_memory', 'persistent_workers', 'num_prefetch_queue', 'use_shuffle'
})


def check_option_keys(opt, accepted, owner):
    """Raise a ValueError naming every key of ``opt`` that neither ``owner`` nor BasicSR reads (a typo in a YAML
    must not be silently ignored), with the closest accepted key and the accepted list."""
    allowed = set(accepted) | BASICSR_DATASET_KEYS
    unknown = [k for k in opt if k not in allowed]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
        raise ValueError(f"{owner} '{opt.get('name', '')}': unknown option {', '.join(hints)}; "
                         f"accepted: {', '.join(sorted(accepted))}")


# ---------------------------------------------------------------- image decoding

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_SOI, JPEG_EOI = b'\xff\xd8', b'\xff\xd9'
_TAIL = 4096  # bytes at a file's end searched for its end marker
_PADDING = b'\x00\r\n'  # trailing bytes some writers and copy tools append after the end marker: ignored


def jpeg_is_complete(data):
    """Whether the JPEG stream at the start of ``data`` reaches its end-of-image marker (FFD9).

    Walks the marker segments (skipping their payloads, so that an EXIF thumbnail's own FFD9 does not count) and the
    entropy-coded data after each start of scan; bytes after the end of image (padding, a motion photo's video) are
    allowed.
    """
    n, pos = len(data), 2
    while True:
        pos = data.find(b'\xff', pos)
        if pos < 0 or pos + 1 >= n:
            return False
        marker = data[pos + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x00, 0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length: stuffing, TEM, SOI, restarts
            pos += 2
            continue
        if pos + 3 >= n:
            return False
        pos += 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker other than FF00 and restarts
            while True:
                pos = data.find(b'\xff', pos)
                if pos < 0 or pos + 1 >= n:
                    return False
                if data[pos + 1] == 0x00 or 0xD0 <= data[pos + 1] <= 0xD7 or data[pos + 1] == 0xFF:
                    pos += 1 if data[pos + 1] == 0xFF else 2
                    continue
                break


def check_complete(content, name):
    """Raise a ValueError naming ``name`` if an image file's bytes are empty or a truncated PNG or JPEG.

    A PNG must end with its IEND chunk (trailing zero or newline padding ignored), a JPEG must reach its end-of-image
    marker (:func:`jpeg_is_complete`). A file cut short by an interrupted copy or download may otherwise still decode
    -- libjpeg fills the missing rows with grey and only warns on stderr -- and would be trained on silently. Other
    formats are left to the decoder.

    Args:
        content (bytes): The file's bytes.
        name (str): The file's name in errors: its path, or '<lmdb>:<key>'.
    """
    if len(content) == 0:
        raise ValueError(f'{shown(name)}: empty file (0 bytes)')
    head = bytes(content[:8])
    if head == PNG_SIGNATURE and bytes(content[-_TAIL:]).rstrip(_PADDING)[-8:-4] != b'IEND':
        raise ValueError(f'{shown(name)}: truncated PNG: no IEND chunk at the end of its {len(content)} bytes (an '
                         'interrupted copy or download?); copy it again or leave it out')
    if head[:2] == JPEG_SOI and not jpeg_is_complete(bytes(content)):
        raise ValueError(f'{shown(name)}: truncated JPEG: it ends before its end-of-image marker (FFD9) after '
                         f'{len(content)} bytes (an interrupted copy or download?); copy it again or leave it out')


def decode_stored(content, name):
    """Decode an image file's bytes as stored: OpenCV's ``IMREAD_UNCHANGED`` array, (H, W) gray or (H, W, 3|4) BGR(A),
    8- or 16-bit, after :func:`check_complete`. EXIF orientation is not applied, so a blurry frame and its sharp
    partner are read alike. A ValueError names ``name`` for anything else."""
    check_complete(content, name)
    img = decode_bytes(content, name, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'{shown(name)}: cannot decode the image (corrupt, or not an image format OpenCV reads)')
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'{shown(name)}: {img.dtype} pixels are not supported (8- or 16-bit images only)')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels not in (1, 3, 4):
        raise ValueError(f'{shown(name)}: {channels} channels are not supported (grayscale, RGB or RGBA)')
    return img


def decode_image(content, name, with_info=False):
    """Decode an image file's bytes (from disk or an LMDB) as a (H, W, 3) float32 BGR array in [0, 1].

    The image reader of every deblurzoo dataset: :func:`decode_stored`, then

    - 8-bit images are divided by 255: for ordinary 8-bit RGB files the same values as BasicSR's
      ``imfrombytes(content, float32=True)``;
    - 16-bit images are divided by 65535, keeping their full precision (``imfrombytes`` decodes with
      ``IMREAD_COLOR``, which reduces them to 8 bits first);
    - grayscale is replicated to 3 channels; an alpha channel (RGBA, gray + alpha) is dropped.

    Args:
        content (bytes): The file's bytes.
        name (str): The file's name in errors: its path, or '<lmdb>:<key>'.
        with_info (bool): Also return the stored format, ``{'bits': 8 | 16, 'channels': 1 | 3 | 4}`` (see
            :func:`format_notes`). Default: False.

    Returns:
        ndarray | tuple[ndarray, dict]: The image (and its format).

    Raises:
        ValueError: Naming ``name``: an empty, truncated or undecodable file, or pixels of another type than 8- or
            16-bit integers, or another channel count than 1, 3 or 4.
    """
    img = decode_stored(content, name)
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif channels == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    info = {'bits': 8 * img.itemsize, 'channels': channels}
    img = img.astype(np.float32) / float(np.iinfo(img.dtype).max)
    return (img, info) if with_info else img


def format_notes(info):
    """What :func:`decode_image` did to an image of the stored format ``info`` beyond reading 8-bit RGB as it is:
    a list of short notes (empty for 8-bit RGB)."""
    notes = []
    if info['channels'] == 1:
        notes.append('grayscale (replicated to 3 channels)')
    elif info['channels'] == 4:
        notes.append('has an alpha channel (dropped)')
    if info['bits'] == 16:
        notes.append('16-bit (read at full precision: divided by 65535)')
    return notes


# ---------------------------------------------------------------- every problem at once


class Problems:
    """A dataset's problems, collected instead of raised (``scripts/check_dataset.py``).

    The layout scans and the datasets' constructors take ``problems=None``. Without a collector they raise on the
    first problem, as training must not start on a broken dataset. With one they record every problem they find,
    each a message naming the file, folder or key at fault, leave out what is at fault (a frame, a sequence, a
    sample) and go on, so that one run lists them all. Problems that leave nothing to go on with (a missing
    dataroot, a missing option) are raised either way. A dataset built with a collector is for checking, not for
    training.

    Attributes:
        errors (list[str]): What would stop or corrupt training, each message naming the file, folder or key.
        notes (list[tuple[str, str]]): What is read correctly but is unusual, as (note, file name): a grayscale
            or 16-bit image (``format_notes``).
    """

    def __init__(self):
        self.errors = []
        self.notes = []


def report(problems, error, messages=None):
    """Raise ``error`` without a collector; with a :class:`Problems` collector record ``messages`` (one per file or
    sequence at fault; default: the error's own message) and return, the caller then leaving out what is at fault."""
    if problems is None:
        raise error
    problems.errors.extend([str(error)] if messages is None else messages)


READ_ERRORS = (ValueError, KeyError, OSError)  # what reading a dataset's file raises (naming the file or key)


def error_message(err):
    """An exception's message (a KeyError's without the quotes ``str`` adds)."""
    return err.args[0] if isinstance(err, KeyError) and err.args else str(err)


def check_group(dataset, files):
    """Read every file of one group of ``dataset`` (a sample or a sequence: see the datasets' ``file_groups``) as
    training reads it (its ``reader``'s ``inspect``: ``frame_reader.FrameReader``), and compare their sizes
    (``reader.size_problems``).

    Returns:
        tuple[list[str], list[tuple[str, str]]]: The problems, and the notes as (note, file name).
    """
    errors, notes, sizes = [], [], []
    for role, path in files:
        try:
            name, size, file_notes = dataset.reader.inspect(path, role)
        except READ_ERRORS as err:
            errors.append(error_message(err))
            continue
        sizes.append((name, size))
        notes += [(note, name) for note in file_notes]
    return errors + dataset.reader.size_problems(sizes), notes


_WORKER_DATASET = None  # the dataset a check_files worker process reads


def _init_worker(dataset):
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _check_in_worker(files):
    return len(files), check_group(_WORKER_DATASET, files)


def check_files(dataset, problems, workers=0, desc=None):
    """Read every file of a dataset built with ``problems`` (:func:`check_group` per group), recording what is wrong
    in ``problems``, with a tqdm progress bar over the files (``desc``: its label).

    Args:
        dataset: A deblurzoo dataset (``file_groups()`` and a ``reader``, a ``frame_reader.FrameReader``).
        problems (Problems): The collector to add the errors and notes to.
        workers (int): Read in this many processes; 0: in this one. Default: 0.
        desc (str | None): The progress bar's label. Default: None.

    Returns:
        int: The number of files read.
    """
    groups = [files for _, files in dataset.file_groups()]
    total = sum(len(files) for files in groups)
    with tqdm(total=total, unit='file', desc=desc, dynamic_ncols=True) as bar:
        if workers > 0 and len(groups) > 1:
            chunk = max(1, min(16, len(groups) // (4 * workers)))
            with multiprocessing.Pool(workers, initializer=_init_worker, initargs=(dataset, )) as pool:
                results = pool.imap(_check_in_worker, groups, chunksize=chunk)
                for count, (errors, notes) in results:
                    problems.errors += errors
                    problems.notes += notes
                    bar.update(count)
        else:
            for files in groups:
                errors, notes = check_group(dataset, files)
                problems.errors += errors
                problems.notes += notes
                bar.update(len(files))
    return total
