"""Deblur images, folders of images and video files with a trained deblurzoo (or any BasicSR) network.

    deblurzoo-infer --model options/demo/test_svdn_demo.yml --input blurry.png --output sharp.png
    deblurzoo-infer --model SVDN --weights net_g_latest.pth --input photos/ --output sharp/ --self-ensemble 8
    python -m deblurzoo.infer --model options/test_sarnrecurrent_dvd.yml --input clip.mp4 --output clip_sharp.mp4

``--model`` is a registered arch name (built with its default, i.e. paper, constructor arguments) or an option file
(``network_g``, and for two-stage models ``network_stage1``; the checkpoints in ``path`` and ``val.self_ensemble``
are the defaults of ``--weights`` and ``--self-ensemble``). Checkpoints are BasicSR's (``params_ema`` is preferred to
``params`` unless ``--param-key`` says otherwise; a bare state dict works too) and load with ``weights_only=True``, so
a checkpoint that holds pickled code is refused.

What comes out has the input's kind, size, bit depth and channel layout: an image gives an image (8- or 16-bit,
grayscale, RGB or RGBA; the network sees RGB, grayscale is restored as RGB and converted back, alpha is kept as it
is), a folder gives a folder with the same relative file names, a video file (mp4, avi, mov, mkv, m4v) gives a video
with the same frame count, size and frame rate. Video nets (window nets such as ``SARNMulti``/``MLFANet``, recurrent
ones such as ``SARNRecurrent``) take a video file, or a folder as the frames of one sequence in name order; recurrent
nets stream the frames (``stream``), window nets hold only their window, so memory does not grow with the length
(the frame mode is the arch's declared one, ``deblurzoo/archs/protocol.py``).

Large inputs are restored in overlapping tiles (``--tile``; ``auto`` measures the net's memory at two small sizes and
tiles only when the input would not fit ``--max-memory``), blended across the overlaps (``deblurzoo/inference/
test_time.py``). ``--self-ensemble`` averages flipped/rotated copies; ``--fp16`` runs CUDA in half precision;
``--side-by-side`` writes input and result next to each other. Existing outputs are never overwritten without
``--overwrite``.

Bad input stops with one line naming the file, key or value (exit status 2), before anything is written where it can
be known early: unreadable, empty or truncated images (a truncated JPEG, which OpenCV would silently fill with grey,
included), checkpoints that are not checkpoints, are truncated, carry pickled code, hold NaN weights or do not fit the
arch (its keys named), option files with unknown or missing constructor arguments (the accepted ones listed, the
closest suggested), and output folders that cannot be written. A result holding NaN or inf is refused rather than
written; :class:`Restorer` also refuses inputs that hold them (a ``ValueError``).
"""
import argparse
import collections
import os
import os.path as osp
import sys

from tqdm import tqdm

import deblurzoo  # noqa: F401  (registers the archs)
from .errors import InferenceError
from .loader import load_model
from .media import (IMAGE_EXTS, VIDEO_EXTS, VideoWriter, check_writable_format, kind_of, read_image, read_video,
                    side_by_side, to_array, to_tensor, write_image)


def plan_jobs(input_path, output_path, video):
    """What to do: a list of (kind, source, target) with kind 'image', 'video' or 'sequence' (a folder of frames)."""
    if osp.isdir(input_path):
        files = sorted(osp.relpath(osp.join(root, name), input_path) for root, _, names in os.walk(input_path)
                       for name in names if osp.splitext(name)[1].lower() in IMAGE_EXTS)
        if not files:
            raise InferenceError(f'no images ({", ".join(IMAGE_EXTS)}) in folder {input_path}')
        if osp.isfile(output_path):
            raise InferenceError(f'--output {output_path} is a file; a folder input needs a folder output')
        jobs = [('image', osp.join(input_path, f), osp.join(output_path, f)) for f in files]
        if video:  # a video net restores a folder as the frames of one sequence
            return [('sequence', [s for _, s, _ in jobs], [t for _, _, t in jobs])]
        return jobs
    if not osp.exists(input_path):
        raise InferenceError(f'--input {input_path} does not exist')
    kind = kind_of(input_path)
    if osp.isdir(output_path) or output_path.endswith(os.sep) or not osp.splitext(output_path)[1]:
        output_path = osp.join(output_path, osp.basename(input_path))  # a folder: the input's name inside
    if kind_of(output_path) != kind:
        exts = ', '.join(IMAGE_EXTS if kind == 'image' else VIDEO_EXTS)
        raise InferenceError(f'--output {output_path}: the input is {"an image" if kind == "image" else "a video"}, '
                             f'so the output must be one too ({exts})')
    return [(kind, input_path, output_path)]


def _targets(jobs):
    for kind, _, target in jobs:
        yield from (target if kind == 'sequence' else [target])


def _check_folder(target, checked):
    """Refuse, before any work, a target whose folder cannot be made or written (``checked``: folders seen)."""
    folder = osp.dirname(osp.abspath(target))
    if folder in checked:
        return
    checked.add(folder)
    existing = folder
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        raise InferenceError(f'--output {target}: {existing} is a file, so no folder can be made there')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InferenceError(f'--output {target}: folder {existing} is not writable (permission denied)')


def _identity(path):
    """(device, inode) of the file at ``path`` (links followed), or None where there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_targets(jobs, overwrite):
    """Refuse to overwrite an input, or an existing output without ``overwrite``; refuse targets in folders that
    cannot be written; check the image formats. Inputs and outputs are compared by file identity, so another name
    of an input (a symbolic or hard link, a bind mount) is refused too."""
    sources = {_identity(s) for kind, src, _ in jobs for s in (src if kind == 'sequence' else [src])} - {None}
    existing, folders = [], set()
    for target in _targets(jobs):
        if _identity(target) in sources:
            raise InferenceError(f'--output would overwrite the input {target}; choose another output path')
        if osp.isdir(target):
            raise InferenceError(f'--output {target} is a folder; it cannot be replaced by a file')
        if osp.exists(target):
            existing.append(target)
        _check_folder(target, folders)
        if kind_of(target) == 'image':
            check_writable_format(target)
    if existing and not overwrite:
        raise InferenceError(f'{len(existing)} output file(s) exist already (first: {existing[0]}); pass '
                             f'--overwrite to replace them')


def run_image(restorer, source, target, device, sbs=False):
    rgb, info = read_image(source)
    check_writable_format(target, info)
    out = to_array(restorer.image(to_tensor(rgb, device), name=source))
    write_image(target, side_by_side(rgb, out) if sbs else out, info)


def run_sequence(restorer, sources, targets, device, sbs=False, progress=True):
    """A folder of frames through a video net, one frame read and one written at a time."""
    infos = []

    def frames():
        size = None
        for source in sources:
            rgb, info = read_image(source)
            if size is not None and rgb.shape != size:
                raise InferenceError(f'{source}: {rgb.shape[1]}x{rgb.shape[0]}, but the sequence\'s first frame is '
                                     f'{size[1]}x{size[0]}; a sequence needs frames of one size')
            size = rgb.shape
            infos.append((rgb, info))
            yield to_tensor(rgb, device)

    bar = tqdm(total=len(sources), unit='frame', disable=not progress, leave=False)
    for i, out in enumerate(restorer.video(frames(), name=lambda i: sources[i])):
        rgb, info = infos[i]
        infos[i] = None  # only the frames a window or look-ahead still needs stay in memory
        write_image(targets[i], side_by_side(rgb, to_array(out)) if sbs else to_array(out), info)
        bar.update()
    bar.close()


def run_video(restorer, source, target, device, sbs=False, progress=True):
    frames, fps, count = read_video(source)
    inputs = collections.deque()

    def tensors():
        for rgb in frames:
            inputs.append(rgb)
            yield to_tensor(rgb, device)

    writer = VideoWriter(target, fps)
    bar = tqdm(total=count, unit='frame', disable=not progress, leave=False)
    try:
        for out in restorer.video(tensors(), name=f'{source} frame'):
            rgb = inputs.popleft()
            writer.write(side_by_side(rgb, to_array(out)) if sbs else to_array(out))
            bar.update()
    finally:
        writer.close()
        bar.close()
    if writer.count == 0:
        raise InferenceError(f'no frames could be decoded from {source}')
    return writer.count


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='deblurzoo-infer', description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    parser.add_argument('--model', required=True, help='registered arch name or option file (YAML)')
    parser.add_argument('--weights', help='checkpoint (default: the option file\'s path.pretrain_network_g)')
    parser.add_argument('--param-key', help='checkpoint key (default: params_ema, else params)')
    parser.add_argument('--input', required=True, help='image, folder or video file')
    parser.add_argument('--output', required=True, help='image, folder or video file (the input\'s kind)')
    parser.add_argument('--self-ensemble', type=int, choices=(0, 1, 4, 6, 8),
                        help='average over 4/6/8 flips and rotations (default: the option file\'s, else off)')
    parser.add_argument('--tile', default='auto',
                        help="tile side in pixels, 0 for none, or 'auto' (tile only if it would not fit; default)")
    parser.add_argument('--tile-overlap', type=int, default=64, help='overlap of neighbouring tiles (default: 64)')
    parser.add_argument('--max-memory', type=float, help='GiB the net may use with --tile auto (default: 80%% of '
                        'free GPU memory, or half the available RAM)')
    parser.add_argument('--fp16', action='store_true', help='half precision (CUDA only)')
    parser.add_argument('--device', default='auto', help="'auto' (a GPU if there is one), 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument('--side-by-side', action='store_true', help='write input and result side by side')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.tile != 'auto':
        try:
            args.tile = int(args.tile)
        except ValueError:
            parser.error(f"--tile: a number of pixels, 0 or 'auto', got {args.tile!r}")
        if args.tile < 0:
            parser.error('--tile: must be >= 0')
        if args.tile and args.tile < args.tile_overlap + 32:
            parser.error(f'--tile ({args.tile}) must be at least --tile-overlap ({args.tile_overlap}) + 32')
    return args


def infer(args):
    """Run the CLI's job (``args`` from :func:`parse_args`); returns the list of files written."""
    if args.weights is None and not args.model.endswith(('.yml', '.yaml')):
        raise InferenceError(f'--weights: a checkpoint for {args.model} is needed (an untrained net does not deblur)')
    model = load_model(args.model, args.weights, args.param_key, args.device)
    max_memory = None if args.max_memory is None else int(args.max_memory * 2**30)
    restorer = model.restorer(args.self_ensemble, tile=args.tile, tile_overlap=args.tile_overlap,
                              max_memory=max_memory, fp16=args.fp16)
    jobs = plan_jobs(args.input, args.output, model.video)
    check_targets(jobs, args.overwrite)
    device = model.device
    progress = not args.quiet
    written = []
    for kind, source, target in tqdm(jobs, unit='file', disable=not progress or len(jobs) == 1):
        if kind == 'image':
            run_image(restorer, source, target, device, args.side_by_side)
            written.append(target)
        elif kind == 'sequence':
            run_sequence(restorer, source, target, device, args.side_by_side, progress)
            written.extend(target)
        else:
            run_video(restorer, source, target, device, args.side_by_side, progress)
            written.append(target)
    return written


def main(argv=None):
    args = parse_args(argv)
    try:
        written = infer(args)
    except (InferenceError, MemoryError, OSError) as err:  # OSError: disk full, a file vanished, ... (it names them)
        print(f'deblurzoo-infer: error: {" ".join(str(err).split())}', file=sys.stderr)  # on one line
        return 2
    if not args.quiet:
        where = written[0] if len(written) == 1 else f'{len(written)} files under {args.output}'
        print(f'deblurzoo-infer: wrote {where}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
