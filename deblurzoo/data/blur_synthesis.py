"""Realistic motion blur from sharp images or frames: the degradation pipeline of ``MotionBlurSynthDataset`` and
``scripts/make_blur_dataset.py``.

Stages, in the order a camera applies them:

1. **inverse camera response**: the 8-bit values are mapped to linear light, ``x ** gamma``;
2. **highlights**: pixels saturated in the sharp image (``>= highlight_threshold``) were brighter than the sensor's
   maximum; they are multiplied by ``highlight_gain`` in linear light, so that after the blur they still clip and
   leave bright streaks, as real light sources do (a plain average would smear them into grey);
3. **blur**, in linear light: a camera-shake kernel (a Boracchi-Foi random trajectory: a random walk with inertia,
   a pull back to the start and occasional jerks, the model DeblurGAN uses; its extent is drawn from a range
   that reaches zero, so sharp input stays sharp), optionally two such motions blended by a smooth random mask
   (regions moving differently), or -- for video -- the average of consecutive frames densified by flow
   interpolation (``frame_averaging.FrameInterpolator``, as REDS was made);
4. **sensor noise** in linear light: signal-dependent (shot) plus signal-independent (read) Gaussian noise;
5. **clipping** to the sensor's range and the **camera response** again, ``x ** (1 / gamma)``, 8-bit quantisation;
6. **JPEG** compression at a random quality.

The sharp target goes through stages 1, 2 and 5 only, so that a zero-length trajectory without noise and JPEG gives
the target back exactly. Every random draw comes from the ``numpy.random.Generator`` passed in.

Where the sharp target sits in a shaken exposure is ``shake_anchor``. ``mean`` (default) centres the kernel on its
centroid: the target is the blur's mean position, which the blurry image itself shows (RealBlur registered its ground
truth the same way). ``middle`` puts the target at the camera's position half-way through the exposure, as GoPro,
REDS and DVD pair an averaged window with its centre frame and as the video mode here does; where the path's middle
lies relative to its centroid is much harder to tell from the blur, and with the demo's recipe the net learnt more
slowly (README, "Training on your own footage"). The flows returned for SVDN's
position loss are the motion from the sharp target's position to the exposure's start and end,
``(u_prev, v_prev, u_next, v_next)`` in pixels (``flow_util``'s convention).

numpy and OpenCV only.
"""
from dataclasses import dataclass, fields

import cv2
import numpy as np

from .frame_averaging import FrameInterpolator

WALK_POINTS = 64  # points of the random walk (its shape); the kernel is rendered from the polyline through them
WALK_SCALE = 60.0  # path length (px) the walk's dynamics are defined at (DeblurGAN's canvas); then rescaled
SPLAT_SPACING = 0.25  # px between the points splatted into a kernel
ANCHORS = ('mean', 'middle')  # SynthConfig.shake_anchor: where the sharp target sits in the exposure


@dataclass
class SynthConfig:
    """The pipeline's settings; each is a YAML key of ``MotionBlurSynthDataset`` and an option of
    ``scripts/make_blur_dataset.py``. Ranges are ``[low, high]``, drawn uniformly per sample.

    Args:
        shake_length: Extent of the camera-shake trajectory in px (the blur's length). Default: [0, 20].
        prob_sharp: Probability of a pair without any degradation (input = target): the model learns to leave sharp
            images alone. Default: 0.1.
        prob_spatial: Probability that two motions are blended by a smooth random mask. Default: 0.3.
        prob_video: For video sources, the probability of exposure-window averaging (else camera shake on one
            frame). Default: 0.5.
        video_window: Frames averaged (an odd number is drawn from this range). Default: [3, 13].
        video_interp: Frames interpolated by flow between consecutive frames before averaging. Default: 7.
        gamma: Exponent of the camera response (``linear = x ** gamma``). Default: [2.0, 2.4].
        highlight_threshold: Sharp values at or above this are saturated highlights. Default: 0.98.
        highlight_gain: Linear-light gain of the saturated highlights before the blur. Default: [1.0, 3.0].
        prob_noise: Probability of sensor noise. Default: 0.5.
        noise_shot: Shot-noise variance per unit of linear signal. Default: [0, 2e-4].
        noise_read: Read-noise standard deviation (linear). Default: [0, 2e-3].
        prob_jpeg: Probability of JPEG compression. Default: 0.3.
        jpeg_quality: JPEG quality range. Default: [70, 95].
        shake_anchor: Where the sharp target sits in a shaken exposure: 'mean' (the kernel's centroid, as RealBlur)
            or 'middle' (the position half-way through the exposure, as GoPro's centre frame). Default: 'mean'.
    """
    shake_length: tuple = (0.0, 20.0)
    prob_sharp: float = 0.1
    prob_spatial: float = 0.3
    prob_video: float = 0.5
    video_window: tuple = (3, 13)
    video_interp: int = 7
    gamma: tuple = (2.0, 2.4)
    highlight_threshold: float = 0.98
    highlight_gain: tuple = (1.0, 3.0)
    prob_noise: float = 0.5
    noise_shot: tuple = (0.0, 2e-4)
    noise_read: tuple = (0.0, 2e-3)
    prob_jpeg: float = 0.3
    jpeg_quality: tuple = (70, 95)
    shake_anchor: str = 'mean'

    @classmethod
    def from_options(cls, opt, owner='MotionBlurSynthDataset'):
        """The settings among ``opt``'s keys (others ignored), checked: a ValueError names the key and value."""
        kwargs = {f.name: opt[f.name] for f in fields(cls) if f.name in opt and opt[f.name] is not None}
        cfg = cls(**kwargs)
        for f in fields(cls):
            value = getattr(cfg, f.name)
            if isinstance(f.default, tuple):
                if not (isinstance(value, (list, tuple)) and len(value) == 2 and value[0] <= value[1]):
                    raise ValueError(f"{owner}: '{f.name}' must be a range [low, high] with low <= high, got {value!r}")
                setattr(cfg, f.name, tuple(value))
            elif f.name.startswith('prob_') and not 0 <= value <= 1:
                raise ValueError(f"{owner}: '{f.name}' is a probability in [0, 1], got {value!r}")
        if cfg.shake_length[0] < 0 or cfg.video_window[0] < 1 or cfg.video_interp < 0 or cfg.gamma[0] <= 0:
            raise ValueError(f'{owner}: shake_length >= 0, video_window >= 1, video_interp >= 0 and gamma > 0 are '
                             f'required, got {cfg.shake_length}, {cfg.video_window}, {cfg.video_interp}, {cfg.gamma}')
        if cfg.shake_anchor not in ANCHORS:
            raise ValueError(f"{owner}: 'shake_anchor' must be one of {', '.join(ANCHORS)}, got {cfg.shake_anchor!r}")
        if not 1 <= cfg.jpeg_quality[0] <= cfg.jpeg_quality[1] <= 100:
            raise ValueError(f"{owner}: 'jpeg_quality' must lie in [1, 100], got {cfg.jpeg_quality}")
        return cfg


# ----------------------------------------------------------------------------------------------- camera response
def to_linear(img, gamma):
    """(H, W, C) float image in [0, 1] -> linear light, ``img ** gamma``."""
    return np.power(img, np.float32(gamma), dtype=np.float32)


def from_linear(lin, gamma):
    """Linear light -> clipped to [0, 1] and gamma-encoded, ``clip(lin) ** (1 / gamma)``."""
    return np.power(np.clip(lin, 0.0, 1.0), np.float32(1.0 / gamma), dtype=np.float32)


def quantize(img):
    """Float image in [0, 1] -> 8-bit levels (float32 in [0, 1]), as a saved frame holds."""
    return (np.rint(np.clip(img, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def boost_highlights(lin, img, threshold, gain):
    """Multiply the linear light of pixels saturated in ``img`` (``>= threshold``, per channel) by ``gain``."""
    if gain == 1.0:
        return lin
    return np.where(img >= threshold, lin * np.float32(gain), lin).astype(np.float32)


# -------------------------------------------------------------------------------------------------- camera shake
def random_trajectory(rng, length, num_points=WALK_POINTS, anchor='mean'):
    """A Boracchi-Foi camera-shake trajectory of extent ``length`` px, its ``anchor`` at the origin.

    A constant-speed random walk whose velocity turns by Gaussian kicks (strength ``shake``), is pulled back towards
    the start (``centripetal``) and now and then jerks back (probability ``jerk``), all scaled by one ``anxiety``
    per trajectory (Boracchi & Foi, "Modeling the performance of image restoration from motion blur", TIP 2012,
    the model DeblurGAN samples its kernels from). The walk is defined at a ``WALK_SCALE`` px path and rescaled so
    that its extent -- the largest distance between two of its points, the length of the blur -- is ``length``: a
    nervous walk folds on itself, and scaling its path length instead would leave it a blot.

    Args:
        rng: ``numpy.random.Generator``.
        length: Extent in px; 0 gives a single point.
        num_points: Points of the walk.
        anchor: 'mean': the mean of the polyline's points (the kernel's centroid) is the origin; 'middle': the
            position half-way through the exposure (half the path length: the walk's speed is constant) is.

    Returns:
        (num_points, 2) float64 array of ``(x, y)`` positions (y down).
    """
    anxiety, centripetal, jerk, shake, angle = rng.uniform(size=5) * np.array([1.0, 0.7, 0.2, 10.0, 2 * np.pi])
    step = WALK_SCALE / (num_points - 1)
    vel = np.exp(1j * angle) * step
    pos = np.zeros(num_points, np.complex128)
    for t in range(num_points - 1):
        kick = 2 * vel * np.exp(1j * (np.pi + rng.uniform(-0.5, 0.5))) if rng.uniform() < jerk * anxiety else 0
        vel = vel + kick + anxiety * (shake * complex(*rng.standard_normal(2)) - centripetal * pos[t]) * step
        vel = vel / max(abs(vel), 1e-12) * step
        pos[t + 1] = pos[t] + vel
    pts = np.stack([pos.real, pos.imag], axis=1)
    pts = pts * (length / max(extent(pts), 1e-9))
    return pts - (densify(pts).mean(axis=0) if anchor == 'mean' else path_point(pts, 0.5))


def path_point(pts, fraction):
    """The point ``fraction`` of the way along the polyline through ``pts`` (N, 2), by path length."""
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    if cum[-1] <= 0:
        return pts[0].copy()
    return np.array([np.interp(fraction * cum[-1], cum, pts[:, k]) for k in range(2)])


def extent(pts):
    """The largest distance between two of the points ``pts`` (N, 2)."""
    return float(np.sqrt(((pts[:, None] - pts[None])**2).sum(-1)).max())


def densify(pts, spacing=SPLAT_SPACING):
    """Points along the polyline through ``pts`` (N, 2), at most ``spacing`` px apart, uniform in time."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    per = np.maximum(1, np.ceil(seg / spacing).astype(int))
    out = [pts[i] + (pts[i + 1] - pts[i]) * (np.arange(n) / n)[:, None] for i, n in enumerate(per)]
    return np.concatenate(out + [pts[-1:]], axis=0)


def trajectory_kernel(pts):
    """The blur kernel of a trajectory: its densified points splatted bilinearly, summing to 1.

    The kernel is odd-sized with the origin at its centre and trimmed to its support: a single point at the origin
    gives ``[[1.0]]``.

    Returns:
        (2r + 1, 2r + 1) float32 kernel ``K`` such that the blurred image is ``sum_u K(u) x(p - u)``.
    """
    dense = densify(np.asarray(pts, np.float64))
    r = int(np.floor(np.abs(dense).max() + 1e-9)) + 1 if np.abs(dense).max() > 0 else 0
    size = 2 * r + 1
    kernel = np.zeros((size + 1, size + 1), np.float64)  # one spare row/column for the splat's far neighbour
    base = np.floor(dense + r).astype(int)
    frac = dense + r - base
    for dy in (0, 1):
        for dx in (0, 1):
            w = (frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
            np.add.at(kernel, (base[:, 1] + dy, base[:, 0] + dx), w)
    t = int(np.abs(np.argwhere(kernel[:size, :size] > 0) - r).max())  # trim to the smallest centred square
    kernel = kernel[r - t:r + t + 1, r - t:r + t + 1]
    return (kernel / kernel.sum()).astype(np.float32)


def blur(lin, kernel):
    """Convolve a linear-light image with ``kernel`` (reflected borders); a 1x1 kernel is applied exactly."""
    if kernel.shape == (1, 1):
        return (lin * kernel[0, 0]).astype(np.float32)
    out = cv2.filter2D(lin, -1, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT)
    return out.reshape(lin.shape)  # OpenCV drops a single channel's axis


def trajectory_flow(pts, shape):
    """(H, W, 4) flow of a uniform shake: the motion to the exposure's start and end, ``pts[0]`` and ``pts[-1]``."""
    return np.broadcast_to(np.concatenate([pts[0], pts[-1]]).astype(np.float32), shape[:2] + (4, )).copy()


def smooth_mask(rng, shape, cells=(2, 5), sharpness=(4.0, 20.0)):
    """A smooth random (H, W, 1) mask in (0, 1): random cells upsampled bicubically, through a sigmoid."""
    h, w = shape[:2]
    n = int(rng.integers(cells[0], cells[1] + 1))
    low = rng.uniform(-1.0, 1.0, (n, n)).astype(np.float32)
    field = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    return (1.0 / (1.0 + np.exp(-rng.uniform(*sharpness) * field)))[..., None].astype(np.float32)


# ---------------------------------------------------------------------------------------------- sensor and codec
def sensor_noise(rng, lin, shot, read):
    """Linear light plus Gaussian noise of variance ``shot * signal + read ** 2``."""
    std = np.sqrt(shot * np.clip(lin, 0.0, None) + read * read).astype(np.float32)
    return lin + rng.standard_normal(lin.shape, dtype=np.float32) * std


def jpeg(img, quality):
    """A float BGR image in [0, 1] through JPEG at ``quality``, back as float32 in [0, 1]."""
    ok, buf = cv2.imencode('.jpg', np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError('OpenCV cannot encode JPEG')
    return cv2.imdecode(buf, cv2.IMREAD_COLOR).astype(np.float32) / 255.0


# ------------------------------------------------------------------------------------------------------ pipeline
def _draw(rng, cfg):
    """The per-sample settings drawn from ``cfg``: one dict, drawn in a fixed order."""
    sharp = rng.uniform() < cfg.prob_sharp
    noise, compress = rng.uniform() < cfg.prob_noise, rng.uniform() < cfg.prob_jpeg
    return {
        'sharp': sharp,
        'gamma': rng.uniform(*cfg.gamma),
        'gain': rng.uniform(*cfg.highlight_gain),
        'noise': (rng.uniform(*cfg.noise_shot), rng.uniform(*cfg.noise_read)) if noise and not sharp else None,
        'quality': int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)) if compress and not sharp else None,
    }


def _finish(rng, lin_blur, lin_sharp, draw):
    """Noise, clipping, camera response, quantisation and JPEG: (lq, gt) float32 in [0, 1]."""
    if draw['noise'] is not None:
        lin_blur = sensor_noise(rng, lin_blur, *draw['noise'])
    lq, gt = quantize(from_linear(lin_blur, draw['gamma'])), quantize(from_linear(lin_sharp, draw['gamma']))
    if draw['quality'] is not None:
        lq = jpeg(lq, draw['quality'])
    return lq, gt


def shake_pair(rng, img, cfg):
    """A (blurry, sharp) pair from one sharp image by camera shake (optionally two blended motions).

    Args:
        rng: ``numpy.random.Generator``.
        img: (H, W, 3) float32 BGR image in [0, 1].
        cfg: :class:`SynthConfig`.

    Returns:
        ``(lq, gt, flow)``: (H, W, 3) float32 images in [0, 1] and the (H, W, 4) float32 flow.
    """
    draw = _draw(rng, cfg)
    lin = boost_highlights(to_linear(img, draw['gamma']), img, cfg.highlight_threshold, draw['gain'])
    lengths = [0.0, 0.0] if draw['sharp'] else rng.uniform(*cfg.shake_length, size=2)
    pts = random_trajectory(rng, lengths[0], anchor=cfg.shake_anchor)
    lin_blur, flow = blur(lin, trajectory_kernel(pts)), trajectory_flow(pts, img.shape)
    if not draw['sharp'] and rng.uniform() < cfg.prob_spatial:
        pts2 = random_trajectory(rng, lengths[1], anchor=cfg.shake_anchor)
        mask = smooth_mask(rng, img.shape)
        lin_blur = mask * lin_blur + (1 - mask) * blur(lin, trajectory_kernel(pts2))
        flow = mask * flow + (1 - mask) * trajectory_flow(pts2, img.shape)
    return _finish(rng, lin_blur, lin, draw) + (flow, )


def odd_window(rng, window_range, available):
    """An odd window length from ``window_range`` that fits in ``available`` frames (at least 1)."""
    low, high = int(window_range[0]), min(int(window_range[1]), available)
    choices = [n for n in range(max(1, low), high + 1) if n % 2]
    return int(rng.choice(choices)) if choices else 1


def window_pair(rng, frames, cfg, dis=None, flow=True):
    """A (blurry, sharp) pair from consecutive sharp frames: their linear-light average over the exposure window,
    densified by ``cfg.video_interp`` flow-interpolated frames per interval; the sharp frame is the centre one.

    With ``gamma`` 2.2, no highlight gain, noise or JPEG this is exactly ``frame_averaging.FrameInterpolator``'s
    ``window_mean`` (the demo set's blur).

    Args:
        rng: ``numpy.random.Generator``.
        frames: Odd-length list of (H, W, 3) uint8 BGR frames, the exposure window.
        cfg: :class:`SynthConfig`.
        dis: An OpenCV DIS optical-flow object for the flows (MEDIUM preset if None).
        flow: Compute the flows (else zeros). Default: True.

    Returns:
        ``(lq, gt, flow)`` as :func:`shake_pair`; the flow is DIS from the centre frame to the window's first and
        last frames.
    """
    if len(frames) % 2 == 0:
        raise ValueError(f'an exposure window needs an odd number of frames, got {len(frames)}')
    draw = _draw(rng, cfg)
    centre = len(frames) // 2
    if draw['sharp']:
        frames, centre = frames[centre:centre + 1], 0
    levels = np.arange(256, dtype=np.float64) / 255.0
    lut = (levels**draw['gamma']).astype(np.float32)  # uint8 -> linear light
    gain = np.where(levels >= cfg.highlight_threshold, draw['gain'], 1.0).astype(np.float32)

    def decode(frame):
        return lut[frame] if draw['gain'] == 1.0 else lut[frame] * gain[frame]

    lin_blur = FrameInterpolator(frames, cfg.video_interp, decode).linear_window_mean(0, len(frames) - 1)
    motion = np.zeros(frames[0].shape[:2] + (4, ), np.float32)
    if flow and len(frames) > 1:
        dis = dis or cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        gray = [cv2.cvtColor(frames[k], cv2.COLOR_BGR2GRAY) for k in (centre, 0, -1)]
        motion = np.concatenate([dis.calc(gray[0], gray[1], None), dis.calc(gray[0], gray[2], None)], axis=2)
    return _finish(rng, lin_blur, decode(frames[centre]), draw) + (motion, )
