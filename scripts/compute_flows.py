"""Compute bi-directional DIS optical flows for every blurry frame of a GoPro-layout dataset.

Usage::

    python scripts/compute_flows.py --root datasets/GOPRO_Large [--splits train test] [--blur-folder blur]
                                    [--out-folder flow] [--out-root FLOW_ROOT] [--force]

Layout read: ``<root>/<split>/<seq>/<blur-folder>/<frame>.<png|jpg|...>`` (frames sorted by file name).
Layout written: ``<root>/<split>/<seq>/<out-folder>/<frame>.png``, one 4-channel 16-bit PNG per blurry frame written
with :func:`deblurzoo.data.flow_util.write_flow`, channels ``(u_prev, v_prev, u_next, v_next)`` in pixels. With
``--out-root`` the flows go to ``<out-root>/<split>/<seq>/<out-folder>/`` instead and the dataset is left as it is
(a read-only or shared copy, say): give the datasets ``dataroot_flow: <out-root>``.

Conventions:

* Flows are computed with OpenCV's DIS optical flow (``DISOPTICAL_FLOW_PRESET_MEDIUM``) on the grayscale *blurry*
  frames -- the frames a deblurring network sees at test time.
* ``(u_prev, v_prev)`` is the flow from frame ``i`` to frame ``i - 1``: the content at pixel ``x`` of frame ``i`` is
  found at ``x + flow_prev(x)`` in frame ``i - 1`` (u: +x, right; v: +y, down). ``(u_next, v_next)`` likewise goes
  from frame ``i`` to frame ``i + 1``. Content moving right by 3 px per frame thus has ``u_next = +3`` and
  ``u_prev = -3``.
* Sequence ends mirror the available direction under a constant-velocity assumption: the first frame gets
  ``flow_prev := -flow_next`` and the last frame ``flow_next := -flow_prev``. A sequence with a single frame has
  nothing to match against and gets zero flows (with a warning).
* Without ``--force`` frames whose flow file already exists are skipped, so an interrupted run can be resumed: every
  flow file is written atomically (``flow_util.write_flow``), so one that exists is complete.
* Only flow files are ever replaced: a file in the way that is not one (``flow_util.is_flow_file``: a 16-bit RGBA PNG
  by its header), say a frame because ``--out-folder`` names the sharp or blurry folder, stops the run before
  anything is written, naming the file, with or without ``--force``.
* Frames are read as bytes and decoded in memory, so any file name works; a failure (an unreadable frame, a full
  disk) names the file and exits with status 1.

The script is importable without side effects (``compute_sequence_flows``, ``compute_root_flows``, ``main``).
"""
import argparse
import importlib
import importlib.util
import os
import sys
import types
import warnings

import cv2
import numpy as np
from tqdm import tqdm

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def _load_flow_util():
    """``deblurzoo.data.flow_util`` without importing the ``deblurzoo`` package.

    Importing ``deblurzoo`` imports torch and registers every network (seconds); the flow file format only needs
    ``flow_util.py`` and ``safe_io.py`` (numpy + cv2), so they are imported from their folder as the package
    ``_deblurzoo_data`` (its ``__init__`` not run): this checkout's copy, else the installed package's (``find_spec``
    on a top-level package locates it without executing it).
    """
    if 'deblurzoo.data.flow_util' in sys.modules:
        return sys.modules['deblurzoo.data.flow_util']
    folder = os.path.join(ROOT_DIR, 'deblurzoo', 'data')
    if not os.path.isfile(os.path.join(folder, 'flow_util.py')):
        spec = importlib.util.find_spec('deblurzoo')
        if spec is None or not spec.submodule_search_locations:
            raise ImportError('deblurzoo is not installed (pip install -e . from the repository root)')
        folder = os.path.join(spec.submodule_search_locations[0], 'data')
    if '_deblurzoo_data' not in sys.modules:
        package = types.ModuleType('_deblurzoo_data')
        package.__path__ = [folder]
        sys.modules['_deblurzoo_data'] = package
    return importlib.import_module('_deblurzoo_data.flow_util')


flow_util = _load_flow_util()
write_flow = flow_util.write_flow
shown = flow_util.safe_io.shown


def create_dis():
    """A DIS optical flow estimator with OpenCV's ``MEDIUM`` preset."""
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def to_gray(img):
    """uint8 grayscale version of a BGR or grayscale image (what DIS expects)."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.dtype != np.uint8:
        raise ValueError(f'expected an 8-bit image, got {img.dtype}')
    return np.ascontiguousarray(img)


def read_gray(path):
    """Read ``path`` as uint8 grayscale: its bytes read with Python and decoded in memory (``flow_util.safe_io``: any
    file name; a header declaring more than the pixel limit refused), with a clear error naming the file."""
    safe_io = flow_util.safe_io
    img = safe_io.read_image(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f'cannot read the image {safe_io.shown(path)}')
    return img


def pair_flow(dis, src, dst):
    """Dense flow from ``src`` to ``dst`` (both uint8 grayscale): ``src(x)`` matches ``dst(x + flow(x))``.

    Args:
        dis: estimator from :func:`create_dis`.
        src: (H, W) uint8 frame the flow is defined on.
        dst: (H, W) uint8 frame it points into.

    Returns:
        (H, W, 2) float32 flow ``(u, v)`` in pixels.
    """
    if src.shape != dst.shape:
        raise ValueError(f'frames of different sizes: {src.shape} vs {dst.shape}')
    return dis.calc(src, dst, None)


def frame_flows(dis, prev_img, cur_img, next_img):
    """Both flows of one frame, mirroring the missing direction at sequence ends.

    Args:
        dis: estimator from :func:`create_dis`.
        prev_img: uint8 grayscale previous frame, or None for the first frame.
        cur_img: uint8 grayscale frame the flows are defined on.
        next_img: uint8 grayscale next frame, or None for the last frame.

    Returns:
        (H, W, 4) float32 array ``(u_prev, v_prev, u_next, v_next)``; zeros when both neighbours are None.
    """
    flow_prev = None if prev_img is None else pair_flow(dis, cur_img, prev_img)
    flow_next = None if next_img is None else pair_flow(dis, cur_img, next_img)
    if flow_prev is None and flow_next is None:
        flow_prev = flow_next = np.zeros(cur_img.shape[:2] + (2, ), np.float32)
    elif flow_prev is None:
        flow_prev = -flow_next
    elif flow_next is None:
        flow_next = -flow_prev
    return np.concatenate([flow_prev, flow_next], axis=2).astype(np.float32)


def compute_sequence_flows(frame_paths):
    """Flows of every frame of one sequence.

    Args:
        frame_paths: image paths of the sequence's blurry frames, in temporal order.

    Returns:
        list of (H, W, 4) float32 arrays ``(u_prev, v_prev, u_next, v_next)``, one per frame (see the module
        docstring for the conventions and the mirroring at the ends).
    """
    frame_paths = list(frame_paths)
    if len(frame_paths) == 1:
        warnings.warn(f'a sequence with a single frame ({shown(frame_paths[0])}) gets zero flows')
    grays = [read_gray(p) for p in frame_paths]
    dis = create_dis()
    flows = []
    for i, cur in enumerate(grays):
        prev_img = grays[i - 1] if i > 0 else None
        next_img = grays[i + 1] if i + 1 < len(grays) else None
        flows.append(frame_flows(dis, prev_img, cur, next_img))
    return flows


def list_frames(folder):
    """Image files directly inside ``folder``, sorted by file name."""
    return sorted(
        os.path.join(folder, f) for f in os.listdir(folder)
        if f.lower().endswith(IMG_EXTENSIONS) and not f.startswith('.'))


def find_sequences(root, splits, blur_folder='blur'):
    """Locate the sequences of a GoPro-layout dataset.

    Args:
        root: dataset root holding one folder per split.
        splits: split folder names, e.g. ``('train', 'test')``.
        blur_folder: name of the blurry-frame folder inside each sequence.

    Returns:
        list of ``(split, seq, frame_paths)`` tuples, sorted by split order then sequence name.

    Raises:
        FileNotFoundError: the root, a split folder or a sequence's blur folder is missing.
        ValueError: no sequence at all, or a blur folder without images.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f'dataset root not found: {shown(root)}')
    sequences = []
    for split in splits:
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f'split folder not found: {shown(split_dir)} (choose the splits with --splits)')
        for seq in sorted(os.listdir(split_dir)):
            seq_dir = os.path.join(split_dir, seq)
            if seq.startswith('.') or not os.path.isdir(seq_dir):
                continue
            blur_dir = os.path.join(seq_dir, blur_folder)
            if not os.path.isdir(blur_dir):
                raise FileNotFoundError(f'sequence without a "{blur_folder}" folder: {shown(blur_dir)} is missing')
            frames = list_frames(blur_dir)
            if not frames:
                raise ValueError(f'no images in {shown(blur_dir)}')
            sequences.append((split, seq, frames))
    if not sequences:
        raise ValueError(f'no sequences found under {shown(root)} (splits: {", ".join(splits)}); expected '
                         f'<root>/<split>/<seq>/{blur_folder}/<frame>.png')
    return sequences


def flow_path_for(frame_path, out_folder='flow', seq_dir=None):
    """``<seq>/<blur>/<frame>.<ext>`` -> ``<seq>/<out_folder>/<frame>.png`` (``<seq_dir>/<out_folder>/...`` where
    ``seq_dir`` is given)."""
    seq_dir = os.path.dirname(os.path.dirname(frame_path)) if seq_dir is None else seq_dir
    name = os.path.splitext(os.path.basename(frame_path))[0]
    return os.path.join(seq_dir, out_folder, name + '.png')


def refuse_non_flows(paths):
    """Raise a ValueError naming the first of ``paths`` that exists and is not a flow file (``is_flow_file``): a
    flow writer replaces flows only, never a frame or another file of the user's."""
    for path in paths:
        if os.path.lexists(path) and not flow_util.is_flow_file(path):
            raise ValueError(f'{shown(path)} exists and is not a flow file (a 16-bit 4-channel PNG); not replacing it: '
                             'choose another --out-folder or --out-root; nothing was written')


def check_out_folder(out_folder, blur_folder):
    """Refuse (ValueError) an ``--out-folder`` that is not one plain folder name, or that is the blurry folder."""
    if out_folder in ('', '.', '..') or os.path.basename(out_folder) != out_folder:
        raise ValueError(f'--out-folder {shown(out_folder)}: one folder name inside each sequence (e.g. flow)')
    if out_folder == blur_folder:
        raise ValueError(f'--out-folder {shown(out_folder)} is the blurry frames\' folder; choose another (e.g. flow)')


def write_sequence_flows(frame_paths, out_folder='flow', force=False, dis=None, pbar=None, seq_dir=None,
                         checked=False):
    """Compute and write the flow file of every frame of one sequence, skipping existing ones unless ``force``.

    Neighbour frames are read lazily and only kept while needed, so skipped frames cost (almost) nothing.

    Args:
        frame_paths: the sequence's blurry frames in temporal order (``<seq>/<blur>/<frame>.<ext>``).
        out_folder: flow folder written beside the blur folder (``<seq>/<out_folder>/<frame>.png``).
        force: recompute flows whose file already exists (flow files only: :func:`refuse_non_flows`).
        dis: estimator from :func:`create_dis` to reuse; a new one if None.
        pbar: optional tqdm bar, advanced once per frame.
        seq_dir: the sequence's folder the flows go into; None: the frames' own (beside the blur folder).
        checked: the caller has refused non-flow files in the way already (:func:`refuse_non_flows`).

    Returns:
        tuple ``(written, skipped)`` of flow-file counts.
    """
    frame_paths = list(frame_paths)
    out_paths = [flow_path_for(frame, out_folder, seq_dir) for frame in frame_paths]
    if not checked:
        refuse_non_flows(out_paths)
    if len(frame_paths) == 1:
        warnings.warn(f'a sequence with a single frame ({shown(frame_paths[0])}) gets zero flows')
    dis = create_dis() if dis is None else dis
    cache = {}

    def gray(j):
        if j < 0 or j >= len(frame_paths):
            return None
        if j not in cache:
            cache[j] = read_gray(frame_paths[j])
        return cache[j]

    written = skipped = 0
    for i, (frame, out_path) in enumerate(zip(frame_paths, out_paths)):
        if not force and os.path.isfile(out_path):
            skipped += 1
        else:
            try:
                flow = frame_flows(dis, gray(i - 1), gray(i), gray(i + 1))
            except ValueError as err:  # e.g. neighbours of different sizes
                raise ValueError(f'{shown(frame)}: {err}') from None
            write_flow(out_path, flow)
            written += 1
        for j in [j for j in cache if j < i]:  # frames i and i + 1 are the only ones needed again
            del cache[j]
        if pbar is not None:
            pbar.update(1)
    return written, skipped


def compute_root_flows(root,
                       splits=('train', 'test'),
                       blur_folder='blur',
                       out_folder='flow',
                       force=False,
                       progress=True,
                       out_root=None):
    """Compute and write the flows of every blurry frame of a GoPro-layout dataset.

    Args:
        root: dataset root.
        splits: split folders to process.
        blur_folder: blurry-frame folder inside each sequence.
        out_folder: flow folder written beside it.
        force: recompute flows whose file already exists (otherwise they are skipped).
        progress: show a tqdm bar over all frames.
        out_root: a GoPro-layout root the flows go to (``<out_root>/<split>/<seq>/<out_folder>/``); None: ``root``.

    Returns:
        dict with the numbers of ``frames``, ``written`` and ``skipped`` flow files.
    """
    check_out_folder(out_folder, blur_folder)
    sequences = find_sequences(root, splits, blur_folder)
    out_root = root if out_root is None else out_root
    # every file in the way checked first: a wrong --out-folder stops the run before any flow is written
    refuse_non_flows(flow_path_for(frame, out_folder, os.path.join(out_root, split, seq))
                     for split, seq, frames in sequences for frame in frames)
    stats = {'frames': sum(len(frames) for _, _, frames in sequences), 'written': 0, 'skipped': 0}
    dis = create_dis()
    with tqdm(total=stats['frames'], unit='frame', desc='DIS flows', disable=not progress) as pbar:
        for split, seq, frames in sequences:
            pbar.set_postfix_str(f'{split}/{seq}')
            written, skipped = write_sequence_flows(frames, out_folder, force, dis, pbar,
                                                    os.path.join(out_root, split, seq), checked=True)
            stats['written'] += written
            stats['skipped'] += skipped
    return stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', required=True, help='dataset root, e.g. datasets/GOPRO_Large or datasets/demo')
    parser.add_argument('--splits', nargs='+', default=['train', 'test'], help='split folders (default: train test)')
    parser.add_argument(
        '--blur-folder',
        default='blur',
        help='blurry-frame folder of a sequence (default: blur; '
        'GoPro also has blur_gamma)')
    parser.add_argument('--out-folder', default='flow', help='flow folder written beside it (default: flow)')
    parser.add_argument('--out-root', help='write the flows under this GoPro-layout root instead of --root, leaving '
                        'the dataset untouched (then give the datasets dataroot_flow: OUT_ROOT)')
    parser.add_argument('--force', action='store_true', help='recompute flows that exist already')
    return parser.parse_args(argv)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        stats = compute_root_flows(args.root, args.splits, args.blur_folder, args.out_folder, args.force,
                                   out_root=args.out_root)
    except (OSError, ValueError) as err:
        print(f'compute_flows.py: error: {err}', file=sys.stderr)
        return 1
    print(f'{stats["frames"]} frames: {stats["written"]} flow files written, {stats["skipped"]} already there '
          f'(use --force to recompute)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
