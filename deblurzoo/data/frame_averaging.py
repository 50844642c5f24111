"""Blur made by averaging sharp frames over an exposure window, the way GoPro, REDS and DVD were made.

* Scene cuts (:func:`detect_scene_cuts`), cut-free segments and exposure windows: no window may straddle a cut.
* :class:`FrameInterpolator`: sums of flow-interpolated frames between consecutive frames (DIS flow, backward warping
  from both ends), so that a window of few frames averages into a smooth streak instead of ghost copies -- as REDS
  interpolated its 120 fps footage before averaging. Averaging is done on gamma-decoded (approximately linear)
  intensities, as GoPro averaged through the camera response.
* :func:`still_pairs`: a simulated hand-held burst of one photo (camera-shake sub-frames averaged per blurry frame),
  the demo set's stills.

numpy and OpenCV only. ``scripts/make_blur_dataset.py`` writes datasets with these; ``MotionBlurSynthDataset``
(``motion_blur_synth_dataset.py``) uses the same averaging on the fly.
"""
import cv2
import numpy as np

GAMMA = 2.2
STILL_FRAMES = 7  # blurry frames per photo
STILL_SUBFRAMES = 13  # sub-frames averaged into one blurry frame
NOISE_SIGMA = 1.5 / 255  # Gaussian noise added to the blurry photos' frames


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


# ------------------------------------------------------------------------------------------- frame averaging
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

    Args:
        frames: list of (H, W, 3) uint8 BGR frames.
        num: frames interpolated per interval (0: the plain average of the real frames).
        decode: uint8 frame -> float32 linear intensities. Default: :func:`gamma_decode` (``(x / 255) ** 2.2``).
    """

    def __init__(self, frames, num, decode=None):
        self.frames = frames
        self.num = num
        self.decode = gamma_decode if decode is None else decode
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
            la, lb = self.decode(a), self.decode(b)
            total = np.zeros_like(la)
            for j in range(1, self.num + 1):
                t = j / (self.num + 1)
                f_ta = -(1 - t) * t * f_ab + t * t * f_ba
                f_tb = (1 - t)**2 * f_ab - t * (1 - t) * f_ba
                total += (1 - t) * self._warp(la, f_ta) + t * self._warp(lb, f_tb)
            self._sums = {k: v for k, v in self._sums.items() if k >= i - 1}  # windows move forward: drop old ones
            self._sums[i] = total
        return self._sums[i]

    def linear_window_mean(self, first, last):
        """Linear-light mean over frames ``first..last`` and the frames interpolated between them (float32)."""
        total = np.sum([self.decode(self.frames[k]) for k in range(first, last + 1)], axis=0)
        if self.num:
            total = total + np.sum([self.interval_sum(k) for k in range(first, last)], axis=0)
        count = (last - first + 1) + (last - first) * self.num
        return total / count

    def window_mean(self, first, last):
        """Gamma-space mean over frames ``first..last`` and the frames interpolated between them, as uint8."""
        return gamma_encode(self.linear_window_mean(first, last))


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
