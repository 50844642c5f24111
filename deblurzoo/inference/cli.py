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
``--side-by-side`` writes input and result next to each other.

Outputs: an input is never written to, whatever name the output has (files are compared by identity: links of every
kind); an existing output is replaced only with ``--overwrite``, and ``--skip-existing`` (which excludes
``--overwrite``) keeps the existing outputs that are complete (they decode; a video has all its frames) and makes the
others, so a rerun finishes an interrupted run; an existing output that does not decode is reported, not replaced.
Every file is written atomically (a temporary file beside the target, checked, then renamed: images through
``deblurzoo.data.safe_io.write_image``, videos through ``safe_io.AtomicVideoWriter``, which reopens the video and
counts its frames first), so a failure (a full disk) leaves no partial file. Any file name works (non-UTF-8 bytes,
spaces, newlines, a leading dash): images are read and written as bytes, and OpenCV opens a video only through a
temporary link with an ASCII name; messages show unprintable names escaped.

Bad input gets one line naming the file, key or value. What is wrong with the model, its checkpoints, option file or
the outputs' folders stops the run before anything is written (exit status 2): checkpoints that are not checkpoints,
are truncated, carry pickled code, hold NaN weights or do not fit the arch (its keys named), option files with
unknown or missing constructor arguments (the accepted ones listed, the closest suggested), a net without weights
(an arch name without ``--weights``, an option file without ``path.pretrain_network_g``: an untrained net does not
deblur; ``--allow-untrained`` runs it anyway). A bad input file does not stop a batch: every good input of a folder is
restored, every bad one (unreadable, empty or truncated images -- a truncated JPEG, which OpenCV would silently fill
with grey, included --, a result holding NaN or inf, a video whose stream ends before the frame count its header
declares, which is an error naming how many frames were read, a write that failed) is listed at the end with its
reason, nothing is left at its output path, and the exit status is 2. A video net restores a folder as one sequence,
so a bad frame ends that sequence (the frames before it are written). :class:`Restorer` also refuses tensors holding
NaN or inf (a ``ValueError``).
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
from deblurzoo.data import output_guard, safe_io
from deblurzoo.data.data_util import decode_stored
from deblurzoo.data.safe_io import shown
from .media import (IMAGE_EXTS, VIDEO_EXTS, VideoWriter, check_writable_format, kind_of, read_image, read_video,
                    side_by_side, to_array, to_tensor, write_image)


def plan_jobs(input_path, output_path, video):
    """What to do: a list of (kind, source, target) with kind 'image', 'video' or 'sequence' (a folder of frames)."""
    if osp.isdir(input_path):
        files = sorted(osp.relpath(osp.join(root, name), input_path) for root, _, names in os.walk(input_path)
                       for name in names if osp.splitext(name)[1].lower() in IMAGE_EXTS)
        if not files:
            raise InferenceError(f'no images ({", ".join(IMAGE_EXTS)}) in folder {shown(input_path)}')
        if osp.isfile(output_path):
            raise InferenceError(f'--output {shown(output_path)} is a file; a folder input needs a folder output')
        jobs = [('image', osp.join(input_path, f), osp.join(output_path, f)) for f in files]
        if video:  # a video net restores a folder as the frames of one sequence
            return [('sequence', [s for _, s, _ in jobs], [t for _, _, t in jobs])]
        return jobs
    if not osp.exists(input_path):
        raise InferenceError(f'--input {shown(input_path)} does not exist')
    kind = kind_of(input_path)
    if osp.isdir(output_path) or output_path.endswith(os.sep) or not osp.splitext(output_path)[1]:
        output_path = osp.join(output_path, osp.basename(input_path))  # a folder: the input's name inside
    if kind_of(output_path) != kind:
        exts = ', '.join(IMAGE_EXTS if kind == 'image' else VIDEO_EXTS)
        what = 'an image' if kind == 'image' else 'a video'
        raise InferenceError(f'--output {shown(output_path)}: the input is {what}, '
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
        raise InferenceError(f'--output {shown(target)}: {shown(existing)} is a file, so no folder can be made there')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InferenceError(f'--output {shown(target)}: folder {shown(existing)} is not writable (permission denied)')


def check_targets(jobs, overwrite, skip_existing=False):
    """Refuse to overwrite an input, or an existing output without ``overwrite`` or ``skip_existing``; refuse targets
    in folders that cannot be written; check the image formats. Inputs and outputs are compared by file identity, so
    another name of an input (a symbolic or hard link, a bind mount) is refused too. Returns the set of targets that
    exist already (with ``skip_existing``: to keep if complete, see :func:`check_existing`)."""
    sources = {output_guard.file_identity(s) for kind, src, _ in jobs
               for s in (src if kind == 'sequence' else [src])} - {None}
    existing, folders = [], set()
    for target in _targets(jobs):
        if output_guard.file_identity(target) in sources:
            raise InferenceError(f'--output would overwrite the input {shown(target)}; choose another output path')
        if osp.isdir(target):
            raise InferenceError(f'--output {shown(target)} is a folder; it cannot be replaced by a file')
        if osp.lexists(target):
            existing.append(target)
        _check_folder(target, folders)
        if kind_of(target) == 'image':
            check_writable_format(target)
    if existing and not (overwrite or skip_existing):
        raise InferenceError(f'{len(existing)} output file(s) exist already (first: {shown(existing[0])}); pass '
                             f'--overwrite to replace them, or --skip-existing to keep them and make the others')
    return set(existing)


def check_existing(target):
    """Make sure the existing output ``target`` is complete (an image that decodes, a video holding every frame its
    header declares, at least one); an :class:`InferenceError` says why not (``--skip-existing`` keeps only complete
    outputs and never replaces the others)."""
    try:
        if kind_of(target) == 'image':
            decode_stored(safe_io.read_bytes(target), target)
        else:
            cap, _, count = safe_io.open_video(target)
            if not sum(1 for _ in safe_io.video_frames(cap, target, count)):  # every frame: a short one fails
                raise ValueError(f'{shown(target)}: no frames')
    except (OSError, ValueError) as err:
        raise InferenceError(f'--skip-existing: the existing output is not complete, so it was neither kept nor '
                             f'replaced (remove it, or rerun with --overwrite): {err}') from None


def run_image(restorer, source, target, device, sbs=False):
    rgb, info = read_image(source)
    check_writable_format(target, info)
    out = to_array(restorer.image(to_tensor(rgb, device), name=shown(source)))
    write_image(target, side_by_side(rgb, out) if sbs else out, info)


def run_sequence(restorer, sources, targets, device, sbs=False, progress=True, keep=()):
    """A folder of frames through a video net, one frame read and one written at a time; the targets in ``keep``
    (complete outputs, ``--skip-existing``) are restored (the net needs their context) but not written. Returns the
    targets written."""
    infos, written = [], []

    def frames():
        size = None
        for source in sources:
            rgb, info = read_image(source)
            if size is not None and rgb.shape != size:
                raise InferenceError(f'{shown(source)}: {rgb.shape[1]}x{rgb.shape[0]}, but the sequence\'s first frame '
                                     f'is {size[1]}x{size[0]}; a sequence needs frames of one size')
            size = rgb.shape
            infos.append((rgb, info))
            yield to_tensor(rgb, device)

    bar = tqdm(total=len(sources), unit='frame', disable=not progress, leave=False)
    try:
        for i, out in enumerate(restorer.video(frames(), name=lambda i: shown(sources[i]))):
            rgb, info = infos[i]
            infos[i] = None  # only the frames a window or look-ahead still needs stay in memory
            if targets[i] not in keep:
                write_image(targets[i], side_by_side(rgb, to_array(out)) if sbs else to_array(out), info)
                written.append(targets[i])
            bar.update()
    finally:
        bar.close()
    return written


def run_video(restorer, source, target, device, sbs=False, progress=True):
    """A video file through the net, written atomically (nothing at ``target`` unless every frame was read, restored
    and written, and the written file reopened holds them all); returns the frame count."""
    frames, fps, count = read_video(source)
    inputs = collections.deque()

    def tensors():
        for rgb in frames:
            inputs.append(rgb)
            yield to_tensor(rgb, device)

    writer = VideoWriter(target, fps)
    bar = tqdm(total=count, unit='frame', disable=not progress, leave=False)
    try:
        for out in restorer.video(tensors(), name=f'{shown(source)} frame'):
            rgb = inputs.popleft()
            writer.write(side_by_side(rgb, to_array(out)) if sbs else to_array(out))
            bar.update()
        if writer.count == 0:
            raise InferenceError(f'no frames could be decoded from {shown(source)}')
        return writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()


class Outcome:
    """What a run did: the files written, the existing outputs kept (``--skip-existing``) and the inputs that failed,
    as (input, message)."""

    def __init__(self):
        self.written, self.kept, self.failed = [], [], []


def run_job(job, restorer, device, args, existing, outcome):
    """One job of :func:`plan_jobs` (its failure propagates; :func:`infer` records it)."""
    kind, source, target = job
    targets = target if kind == 'sequence' else [target]
    keep = set()
    if args.skip_existing:
        for t in targets:
            if t in existing:
                check_existing(t)
                keep.add(t)
    if len(keep) == len(targets):
        outcome.kept.extend(targets)
        return
    if kind == 'image':
        run_image(restorer, source, target, device, args.side_by_side)
        outcome.written.append(target)
    elif kind == 'sequence':
        try:
            outcome.written.extend(run_sequence(restorer, source, target, device, args.side_by_side,
                                                not args.quiet, keep))
        finally:
            outcome.kept.extend(t for t in targets if t in keep)
    else:
        run_video(restorer, source, target, device, args.side_by_side, not args.quiet)
        outcome.written.append(target)


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
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument('--overwrite', action='store_true', help='replace existing output files')
    existing.add_argument('--skip-existing', action='store_true',
                          help='keep the existing outputs that are complete and make the others (to finish an '
                          'interrupted run); an incomplete one is reported, not replaced')
    parser.add_argument('--allow-untrained', action='store_true',
                        help='run a net without weights (an arch name without --weights, an option file without '
                        'path.pretrain_network_g): for tests and measurements, it does not deblur')
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
    """Run the CLI's job (``args`` from :func:`parse_args`). Problems with the model, options or outputs raise an
    :class:`InferenceError` before anything is written; a bad input is recorded and the others are still restored.
    Returns an :class:`Outcome`."""
    untrained = getattr(args, 'allow_untrained', False)
    if args.weights is None and not args.model.endswith(('.yml', '.yaml')) and not untrained:
        raise InferenceError(f'--weights: a checkpoint for {args.model} is needed (an untrained net does not deblur; '
                             '--allow-untrained runs it anyway)')
    model = load_model(args.model, args.weights, args.param_key, args.device, allow_untrained=untrained)
    max_memory = None if args.max_memory is None else int(args.max_memory * 2**30)
    restorer = model.restorer(args.self_ensemble, tile=args.tile, tile_overlap=args.tile_overlap,
                              max_memory=max_memory, fp16=args.fp16)
    jobs = plan_jobs(args.input, args.output, model.video)
    existing = check_targets(jobs, args.overwrite, args.skip_existing)
    outcome = Outcome()
    for job in tqdm(jobs, unit='file', disable=args.quiet or len(jobs) == 1):
        try:
            run_job(job, restorer, model.device, args, existing, outcome)
        except (InferenceError, MemoryError, OSError, ValueError) as err:  # each names its file and the cause
            source = job[1][0] if job[0] == 'sequence' else job[1]
            outcome.failed.append((source, _one_line(err) or type(err).__name__))
    return outcome


def _one_line(message):
    """``message`` on one printable line: whitespace runs joined, anything still unprintable (a name that no message
    escaped, e.g. a checkpoint's) escaped as ``safe_io.shown`` escapes it."""
    return shown(' '.join(str(message).split()))


def main(argv=None):
    args = parse_args(argv)
    try:
        outcome = infer(args)
    except (InferenceError, MemoryError, OSError) as err:  # OSError: disk full, a file vanished, ... (it names them)
        print(f'deblurzoo-infer: error: {_one_line(err)}', file=sys.stderr)
        return 2
    for _, message in outcome.failed:
        print(f'deblurzoo-infer: error: {message}', file=sys.stderr)
    done = len(outcome.written) + len(outcome.kept)
    if outcome.failed and done + len(outcome.failed) > 1:
        print(f'deblurzoo-infer: {len(outcome.failed)} input(s) failed (listed above); {len(outcome.written)} '
              f'output(s) written' + (f', {len(outcome.kept)} existing kept' if outcome.kept else ''),
              file=sys.stderr)
    if outcome.failed:
        return 2
    if not args.quiet:
        if len(outcome.written) == 1 and not outcome.kept:
            print(f'deblurzoo-infer: wrote {shown(outcome.written[0])}')
        else:
            print(f'deblurzoo-infer: wrote {len(outcome.written)} files under {shown(args.output)}'
                  + (f', kept {len(outcome.kept)} existing' if outcome.kept else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
