"""Write a fixed motion-blur dataset from sharp footage, in the GoPro, REDS or DVD layout.

Usage::

    python scripts/make_blur_dataset.py SOURCE [SOURCE ...] --out DIR [--layout gopro|reds|dvd] [--split train]
        [--window 7] [--stride 7] [--interp 7] [--photo-frames 7] [--seed 0] [--flow] [--force]
        [--gamma 2.2 2.2] [--highlight-gain 1 3] [--prob-noise 0.5] [--prob-jpeg 0] ...

SOURCE: video files, folders of frames (a folder holding images is one clip, its frames in natural order; a folder
holding folders of frames or video files gives one clip per folder or file) and photo files; ``--photos`` takes
folders of photos (each image one photo, as ``MotionBlurSynthDataset`` reads its ``dataroot``).

Clips are split at scene cuts; each cut-free segment becomes a sequence (``<clip>_00``, ...) of blurry frames, each
the linear-light average of ``--window`` consecutive sharp frames (densified by ``--interp`` flow-interpolated frames
per interval, as REDS was made) whose centre frame is the sharp target, taken every ``--stride`` frames. Photos
become sequences of ``--photo-frames`` frames, each blurred by its own camera-shake trajectory. The degradations --
camera response, highlights, noise, JPEG -- are those of ``deblurzoo/data/blur_synthesis.py`` with the options below
(defaults: an exact camera response of 2.2 and nothing else, as GoPro was made). Each pair draws its randomness from
``(seed, sequence, frame)``.

Layouts (frames written as 8-bit PNG; the matching registered dataset reads them)::

    gopro  <out>/<split>/<seq>/{blur,sharp}/%06d.png            GoProDataset (split: train | test)
    reds   <out>/<split>_{blur,sharp}/<seq>/%08d.png             REDSDeblurDataset (split: train | val)
    dvd    <out>/<seq>/{input,GT}/%05d.png                       DVDDataset (partition: all)

``--flow`` (GoPro layout) adds ``<seq>/flow/`` (scripts/compute_flows.py) for SVDN's position loss. Every file is
written atomically (a temporary file renamed), finished files are skipped, so an interrupted run resumes;
``<out>/manifest.json`` is written last and lists what was made. ``--out`` must be a new or empty folder, or one this
script built (it holds ``build_settings.json``), and must not overlap a source: nothing of the user's is overwritten.
"""
import argparse
import importlib.util
import json
import os
import sys
import time
import zlib
from dataclasses import fields

import cv2
import numpy as np
from tqdm import tqdm

SCRIPTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(SCRIPTS_DIR))  # the repository's deblurzoo, also when run as a file

from deblurzoo.data import output_guard, safe_io  # noqa: E402
from deblurzoo.data.blur_synthesis import ANCHORS, SynthConfig, shake_pair, window_pair  # noqa: E402
from deblurzoo.data.frame_averaging import detect_scene_cuts, segment_windows, split_segments, still_pairs  # noqa
from deblurzoo.data.motion_blur_synth_dataset import read_frame, read_video, scan_sources  # noqa: E402

LAYOUTS = {  # layout: (blurry path, sharp path) templates, the splits the matching dataset reads
    'gopro': (('{split}', '{seq}', 'blur', '{k:06d}.png'), ('{split}', '{seq}', 'sharp', '{k:06d}.png'), ('train',
                                                                                                          'test')),
    'reds': (('{split}_blur', '{seq}', '{k:08d}.png'), ('{split}_sharp', '{seq}', '{k:08d}.png'), ('train', 'val')),
    'dvd': (('{seq}', 'input', '{k:05d}.png'), ('{seq}', 'GT', '{k:05d}.png'), ('all', )),
}
SETTINGS = 'build_settings.json'  # the settings of the last build in an output folder; marks the folder as one
PLAIN = SynthConfig(gamma=(2.2, 2.2), highlight_gain=(1.0, 1.0), prob_sharp=0.0, prob_spatial=0.0, prob_noise=0.0,
                    prob_jpeg=0.0)  # GoPro's model: average through an exact camera response, nothing else
MIN_PAIRS = 3  # a segment giving fewer windows is dropped (a sequence needs real neighbours)


# ------------------------------------------------------------------------------------------------------ planning
def plan_clip(name, frames, window=7, stride=7, interp=7, split='train', max_pairs=None, min_pairs=MIN_PAIRS):
    """The sequences of one clip: one per cut-free segment giving at least ``min_pairs`` windows.

    Args:
        name: The clip's name; sequences are ``<name>_00``, ``<name>_01``, ...
        frames: (H, W, 3) uint8 frames.
        window, stride, interp: Frames averaged (odd), frames between windows, interpolated frames per interval.
        split: The sequences' split.
        max_pairs: Keep at most this many windows per sequence (the kept segments do not depend on it).

    Returns:
        ``(plans, cuts)``: dicts ``name, kind='video', split, frames, segment, windows, interp`` and the cut indices.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f'--window must be an odd number >= 1, got {window}')
    cuts = detect_scene_cuts(frames)
    plans = []
    for start, stop in split_segments(len(frames), cuts):
        windows = segment_windows(start, stop, window, stride)
        if len(windows) >= min_pairs:
            plans.append(dict(name=f'{name}_{len(plans):02d}', kind='video', split=split, frames=frames,
                              segment=(start, stop), windows=windows[:max_pairs] if max_pairs else windows,
                              interp=interp))
    return plans, cuts


def plan_photo(name, image, num_frames=7, split='train', burst=False):
    """One sequence of ``num_frames`` blurry versions of a photo: independent camera shakes through the pipeline, or
    with ``burst`` a simulated hand-held burst (``frame_averaging.still_pairs``: consecutive windows of one shake)."""
    return dict(name=name, kind='burst' if burst else 'photo', split=split, image=image,
                windows=[(k, k) for k in range(num_frames)])


def sequence_rng(seed, name, *more):
    return np.random.default_rng([seed, zlib.crc32(name.encode()), *more])


def synthesize(plan, seed, cfg):
    """Yield the ``(blur, sharp)`` uint8 pairs of one planned sequence."""
    if plan['kind'] == 'video':
        frames, cfg_v = plan['frames'], SynthConfig(**dict(vars(cfg), video_interp=plan['interp']))
        for k, (first, last) in enumerate(plan['windows']):
            lq, gt, _ = window_pair(sequence_rng(seed, plan['name'], k), frames[first:last + 1], cfg_v, flow=False)
            yield to_uint8(lq), to_uint8(gt)
    elif plan['kind'] == 'burst':
        pairs, _ = still_pairs(plan['image'], sequence_rng(seed, plan['name']), num_frames=len(plan['windows']))
        yield from pairs
    else:
        img = plan['image'].astype(np.float32) / 255.0
        for k in range(len(plan['windows'])):
            lq, gt, _ = shake_pair(sequence_rng(seed, plan['name'], k), img, cfg)
            yield to_uint8(lq), to_uint8(gt)


def to_uint8(img):
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------- writing
def pair_paths(out, layout, split, seq, k):
    """(blurry, sharp) paths of pair ``k`` of ``seq`` in ``layout``."""
    blur_t, sharp_t, _ = LAYOUTS[layout]
    return tuple(os.path.join(out, *[p.format(split=split, seq=seq, k=k) for p in t]) for t in (blur_t, sharp_t))


def write_atomic(path, data):
    """Write ``data`` (bytes) to ``path`` through a temporary file, checked and renamed over it
    (``safe_io.write_bytes_atomic``)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    safe_io.write_bytes_atomic(path, data)


def write_png(path, img):
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise OSError(f'cannot encode {path}')
    write_atomic(path, buf.tobytes())


def load_compute_flows():
    """``scripts/compute_flows.py`` as a module (``scripts`` is not a package)."""
    if 'compute_flows' not in sys.modules:
        spec = importlib.util.spec_from_file_location('compute_flows', os.path.join(SCRIPTS_DIR, 'compute_flows.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules['compute_flows'] = module
        spec.loader.exec_module(module)
    return sys.modules['compute_flows']


def build(plans, out, layout='gopro', seed=0, cfg=PLAIN, flow=False, force=False, extra=None):
    """Write the planned sequences into ``out`` and return the manifest (also written, last, to manifest.json).

    Pairs whose two files exist are skipped (an interrupted build resumes) unless ``force`` or ``out`` was last
    written with other settings (``<out>/build_settings.json``: ``extra``, layout, seed, ``cfg``, flow): then every
    file is written again. ``extra`` is merged into the manifest.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout '{layout}'; choose one of {', '.join(LAYOUTS)}")
    bad = sorted({p['split'] for p in plans} - set(LAYOUTS[layout][2]))
    if bad:
        raise ValueError(f'the {layout} layout has the splits {", ".join(LAYOUTS[layout][2])}, not {", ".join(bad)}')
    if flow and layout != 'gopro':
        raise ValueError('flows (for SVDN) are written in the gopro layout only')
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    manifest_path = os.path.join(out, 'manifest.json')
    if os.path.exists(manifest_path):  # an interrupted rebuild must not look complete
        os.remove(manifest_path)
    # files already there are kept only if they were made with these very settings (an interrupted build resumed)
    settings = json.dumps(dict(extra or {}, layout=layout, seed=seed, config=vars(cfg), flow=flow), sort_keys=True,
                          default=list)
    settings_path = os.path.join(out, SETTINGS)
    force = force or not same_settings(settings_path, json.loads(settings))
    write_atomic(settings_path, settings.encode())
    sequences, written = [], 0
    with tqdm(total=sum(len(p['windows']) for p in plans), unit='pair', desc='blur/sharp pairs') as pbar:
        for plan in plans:
            pbar.set_postfix_str(plan['name'])
            paths = [pair_paths(out, layout, plan['split'], plan['name'], k) for k in range(len(plan['windows']))]
            todo = [k for k, pair in enumerate(paths) if force or not all(os.path.isfile(p) for p in pair)]
            pairs = synthesize(plan, seed, cfg) if todo else iter(())
            size = None
            for k, (blur, sharp) in enumerate(pairs):
                if k in todo:
                    write_png(paths[k][0], blur)
                    write_png(paths[k][1], sharp)
                    written += 1
                size = blur.shape[1], blur.shape[0]
                pbar.update(1)
            if not todo:
                size = tuple(reversed(read_frame(paths[0][0]).shape[:2]))
                pbar.update(len(paths))
            sequences.append({'name': plan['name'], 'split': plan['split'], 'source': plan.get('source'),
                              'kind': plan['kind'], 'pairs': len(paths), 'width': size[0], 'height': size[1],
                              'windows': [list(map(int, w)) for w in plan['windows']]})
    if flow:
        compute_flows = load_compute_flows()
        dis = compute_flows.create_dis()
        with tqdm(total=sum(s['pairs'] for s in sequences), unit='frame', desc='DIS flows') as pbar:
            for seq in sequences:
                blur_dir = os.path.dirname(pair_paths(out, layout, seq['split'], seq['name'], 0)[0])
                compute_flows.write_sequence_flows(compute_flows.list_frames(blur_dir), 'flow', force, dis, pbar)
    manifest = dict(extra or {}, layout=layout, flow=flow, written=written, sequences=sequences)
    manifest['splits'] = {s: {'sequences': sum(q['split'] == s for q in sequences),
                              'pairs': sum(q['pairs'] for q in sequences if q['split'] == s)}
                          for s in LAYOUTS[layout][2]}
    write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
    return manifest


def same_settings(path, wanted):
    """Whether the build settings recorded at ``path`` are ``wanted``. A pipeline option newer than the record takes
    its default there: an option is only ever added with a default that makes the output it made before, so a set
    built by an older version resumes instead of being written again."""
    try:
        with open(path) as f:
            have = json.load(f)
    except (OSError, ValueError):  # none, or unreadable: the files beside it cannot be trusted
        return False
    if isinstance(have, dict) and isinstance(have.get('config'), dict):
        defaults = json.loads(json.dumps(vars(SynthConfig()), default=list))
        have['config'] = {**defaults, **have['config']}
    return have == wanted


def check_complete(out, wanted):
    """None if ``out`` holds a complete build whose manifest has the ``wanted`` settings, else the reason why not."""
    try:
        with open(os.path.join(out, 'manifest.json')) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        return 'no manifest'
    except (OSError, ValueError):
        return 'unreadable manifest'
    have = {k: manifest.get(k) for k in wanted}
    if have != wanted:
        return f'built with other settings ({have} vs {wanted})'
    for seq in manifest.get('sequences', []):
        for k in range(seq['pairs']):
            for path in pair_paths(out, manifest['layout'], seq['split'], seq['name'], k):
                if not os.path.isfile(path):
                    return f'{path} is missing'
            if manifest.get('flow'):
                blur = pair_paths(out, manifest['layout'], seq['split'], seq['name'], k)[0]
                if not os.path.isfile(load_compute_flows().flow_path_for(blur)):
                    return f'the flow of {blur} is missing'
    return None


# -------------------------------------------------------------------------------------------------- command line
def check_out(out, sources):
    """Refuse, before anything is read or written, an ``--out`` that would put files among the user's own: one that
    is, holds or lies inside a source (links resolved), or one :func:`check_owned` refuses. A ValueError names the
    folder and says why."""
    for source in sources:
        output_guard.refuse_overlap(out, source, '--out', 'the source')
    check_owned(out)


def check_owned(out):
    """Refuse (ValueError) an output folder that is a file, or that holds files and is not a build of this script
    or of ``make_demo_data.py`` (it has no ``build_settings.json``): none of a user's files is ever overwritten."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f'--out {out} is a file, not a folder; nothing was written')
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, SETTINGS)):
        raise ValueError(f'--out {out} holds files that no deblurzoo dataset build wrote (it has no {SETTINGS}): '
                         f'choose a new or empty folder, so that none of them is overwritten; nothing was written')


def claim_out(out):
    """Make ``out`` (see :func:`check_owned`) a build folder before anything else is written into it: an empty
    settings record, which no build's settings equal, marks it, so that an interrupted first build can resume."""
    check_owned(out)
    os.makedirs(out, exist_ok=True)
    if not os.path.isfile(os.path.join(out, SETTINGS)):
        write_atomic(os.path.join(out, SETTINGS), b'{}')


def collect_sources(sources, photo_folders):
    """(photos, clips) of the command line: a folder holding images is one clip; other folders, files and the
    ``--photos`` folders are read by ``scan_sources``."""
    photos, clips = scan_sources(photo_folders) if photo_folders else ([], [])
    for path in sources:
        found_photos, found_clips = scan_sources([path])
        if os.path.isdir(path) and found_photos:  # the images directly in a listed folder are its frames
            clips.append(found_photos)
        else:
            photos += found_photos
        clips += found_clips
    return photos, clips


def config_from_args(args):
    """The pipeline settings given on the command line, over :data:`PLAIN`."""
    given = {f.name: getattr(args, f.name) for f in fields(SynthConfig) if getattr(args, f.name, None) is not None}
    return SynthConfig.from_options(dict(vars(PLAIN), **given), owner='make_blur_dataset.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('sources', nargs='*', help='video files, frame folders and photo files')
    parser.add_argument('--photos', nargs='*', default=[], help='folders of photos')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--layout', choices=sorted(LAYOUTS), default='gopro')
    parser.add_argument('--split', default=None, help='gopro: train|test, reds: train|val (default: train)')
    parser.add_argument('--window', type=int, default=7, help='sharp frames averaged per blurry frame (odd)')
    parser.add_argument('--stride', type=int, default=None, help='frames between windows (default: --window)')
    parser.add_argument('--interp', type=int, default=7, help='frames interpolated between consecutive frames')
    parser.add_argument('--photo-frames', type=int, default=7, help='blurry frames made per photo')
    parser.add_argument('--max-pairs-per-seq', type=int, default=None, help='quick builds: at most N pairs each')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--flow', action='store_true', help='gopro layout: also DIS flows for SVDN')
    parser.add_argument('--force', action='store_true', help='rewrite existing files')
    for f in fields(SynthConfig):
        if f.name in ('video_window', 'video_interp', 'prob_video'):
            continue
        flag = '--' + f.name.replace('_', '-')
        if isinstance(f.default, tuple):
            parser.add_argument(flag, type=float, nargs=2, metavar=('LOW', 'HIGH'), default=None,
                                help=f'range (default {getattr(PLAIN, f.name)})')
        elif f.name == 'shake_anchor':
            parser.add_argument(flag, choices=ANCHORS, default=None, help=f'default {PLAIN.shake_anchor}')
        else:
            parser.add_argument(flag, type=float, default=None, help=f'default {getattr(PLAIN, f.name)}')
    args = parser.parse_args(argv)
    if not args.sources and not args.photos:
        parser.error('give video files, frame folders or photos (SOURCE or --photos)')
    args.split = args.split or LAYOUTS[args.layout][2][0]
    args.stride = args.stride or args.window
    if args.window < 1 or args.window % 2 == 0 or args.stride < 1 or args.interp < 0 or args.photo_frames < 1:
        parser.error('--window must be odd and >= 1, --stride and --photo-frames >= 1, --interp >= 0')
    return args


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    start = time.time()
    try:
        cfg = config_from_args(args)
        check_out(args.out, list(args.sources) + list(args.photos or []))
        photos, clips = collect_sources(args.sources, args.photos)
        plans = []
        for clip in clips:
            name = os.path.splitext(os.path.basename(clip if isinstance(clip, str) else os.path.dirname(clip[0])))[0]
            frames = read_video(clip) if isinstance(clip, str) else [read_frame(p) for p in clip]
            plans += plan_clip(name, frames, args.window, args.stride, args.interp, args.split,
                               args.max_pairs_per_seq)[0]
        for photo in photos:
            name = os.path.splitext(os.path.basename(photo))[0]
            plans.append(plan_photo(name, read_frame(photo), args.photo_frames, args.split))
        names = [p['name'] for p in plans]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f'two sources give the same sequence name: {twice} (rename a folder or file)')
        extra = {k: getattr(args, k) for k in ('sources', 'window', 'stride', 'interp', 'photo_frames',
                                               'max_pairs_per_seq')}
        manifest = build(plans, args.out, args.layout, args.seed, cfg, args.flow, args.force, extra=extra)
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f'make_blur_dataset.py: error: {err}', file=sys.stderr)
        return 1
    print(f"{len(manifest['sequences'])} sequences, {sum(s['pairs'] for s in manifest['sequences'])} pairs "
          f"({manifest['written']} written, the rest already there) in {args.out}, {time.time() - start:.1f} s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
