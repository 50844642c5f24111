"""Motion-blur pairs synthesised on the fly from folders of sharp images and videos (``MotionBlurSynthDataset``).

The blur is made as GoPro, REDS and DVD were made -- sharp frames averaged over an exposure window in linear light,
densified by flow interpolation -- and, for photos, by random camera-shake trajectories (the Boracchi-Foi model that
DeblurGAN uses), optionally spatially varying, with clipped highlights, sensor noise and JPEG
(``blur_synthesis.py``). Every epoch sees new blur, and a sample depends only on ``seed`` and its index.

Sources (``dataroot``: one path or a list)::

    <dir>/<photo>.png|jpg|...        each image directly in a listed folder is a photo (or a listed image file)
    <dir>/<clip>.mp4|avi|mov|mkv|... each video file is a clip (decoded once per worker and kept in memory)
    <dir>/<any>/.../<frame>.png      each sub-folder holding images is a clip of frames (natural sort order)

Scene cuts in clips are detected on construction (``detect_cuts``); no exposure window straddles one.
"""
import contextlib
import os
import random
from collections import OrderedDict
from os import path as osp

import cv2
import numpy as np
from torch.utils import data as data

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from ..option_values import NON_NEGATIVE, check_value, number
from . import safe_io
from .blur_synthesis import SynthConfig, odd_window, shake_pair, window_pair
from .data_util import check_option_keys, decode_image
from .frame_averaging import detect_scene_cuts, split_segments
from .layout_scan import IMG_EXTENSIONS, natural_key

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg')
CUT_SIDE = 160  # frames are compared for scene cuts at this width


def _listdir(folder):
    return sorted(os.listdir(folder), key=natural_key)


def scan_sources(paths):
    """The photos and clips under ``paths`` (see the module's docstring).

    Returns:
        tuple[list[str], list[str | list[str]]]: Photo paths, and clips: a video file's path or a list of frame paths.

    Raises:
        FileNotFoundError: A path does not exist, or nothing usable is found (naming the paths).
    """
    photos, clips = [], []
    for root in paths:
        ext = osp.splitext(root)[1].lower()
        if osp.isfile(root):
            if ext in IMG_EXTENSIONS:
                photos.append(root)
            elif ext in VIDEO_EXTENSIONS:
                clips.append(root)
            else:
                raise ValueError(f'MotionBlurSynthDataset: {root} is neither an image ({", ".join(IMG_EXTENSIONS)}) '
                                 f'nor a video ({", ".join(VIDEO_EXTENSIONS)})')
            continue
        if not osp.isdir(root):
            raise FileNotFoundError(f'MotionBlurSynthDataset: dataroot not found: {root}')
        for name in _listdir(root):
            path, ext = osp.join(root, name), osp.splitext(name)[1].lower()
            if osp.isfile(path) and ext in IMG_EXTENSIONS:
                photos.append(path)
            elif osp.isfile(path) and ext in VIDEO_EXTENSIONS:
                clips.append(path)
        for folder, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            if folder == root:
                continue
            frames = [osp.join(folder, f) for f in sorted(files, key=natural_key) if osp.splitext(f)[1].lower()
                      in IMG_EXTENSIONS]
            if frames:
                clips.append(frames)
            clips += [osp.join(folder, f) for f in sorted(files) if osp.splitext(f)[1].lower() in VIDEO_EXTENSIONS]
    if not photos and not clips:
        raise FileNotFoundError(f'MotionBlurSynthDataset: no images or videos found in {", ".join(paths)}')
    return photos, clips


def read_frame(path):
    """An image file as (H, W, 3) uint8 BGR through the project's checked decoder (16-bit rounded to 8)."""
    with open(path, 'rb') as f:
        return np.rint(decode_image(f.read(), path) * 255.0).astype(np.uint8)


def read_video(path):
    """All frames of a video file as a list of (H, W, 3) uint8 BGR arrays (error naming the file if none, or fewer
    than its header declares); any file name (``safe_io.read_video``)."""
    return safe_io.read_video(path)


def clip_segments(frames, detect_cuts):
    """Cut-free ``(start, stop)`` segments of a clip (``frames``: uint8 frames or a list of frame paths)."""
    if not detect_cuts or len(frames) < 3:
        return [(0, len(frames))]
    small = []
    for frame in frames:
        img = read_frame(frame) if isinstance(frame, str) else frame
        h, w = img.shape[:2]
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        small.append(cv2.resize(gray, (CUT_SIDE, max(1, round(h * CUT_SIDE / w))), interpolation=cv2.INTER_AREA))
    return split_segments(len(frames), detect_scene_cuts(small))


class FrameCache:
    """Decoded images by path, the least recently used dropped first once they hold more than ``max_bytes``.

    An exposure window decodes up to ``video_window`` frames of a clip, and its neighbours' windows decode most of
    them again: kept decoded, each frame is read once per worker while it stays in the cache. The cached arrays are
    read-only, so that no caller can change what the next sample gets.
    """

    def __init__(self, max_bytes):
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._items = OrderedDict()

    def get(self, path, load):
        """The image at ``path``, from the cache or ``load(path)``."""
        img = self._items.get(path)
        if img is not None:
            self._items.move_to_end(path)
            return img
        img = load(path)
        if img.nbytes <= self.max_bytes:
            img.flags.writeable = False
            self._items[path] = img
            self.nbytes += img.nbytes
            while self.nbytes > self.max_bytes:
                self.nbytes -= self._items.popitem(last=False)[1].nbytes
        return img

    def __len__(self):
        return len(self._items)


@contextlib.contextmanager
def seeded_python_random(seed):
    """Run BasicSR's crop and augmentation (which draw from Python's ``random``) from ``seed``, then restore the
    previous state, so that a sample depends on its own seed only."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


@DATASET_REGISTRY.register()
class MotionBlurSynthDataset(data.Dataset):
    """(blurry, sharp) pairs synthesised on the fly from sharp photos and clips.

    Sample ``i`` takes source item ``i % number of items`` (every photo is one item, every frame of a clip one, the
    centre of its exposure window) -- or, with ``prob_photo``, photo ``i % number of photos`` with that probability
    and clip frame ``i % number of clip frames`` otherwise, so that a few photos beside long clips are not drowned
    out -- and draws all its randomness -- blur mode, trajectory, window, gamma, highlights,
    noise, JPEG, crop, flips -- from ``numpy.random.default_rng([seed, i])``: reproducible, whatever the worker
    order. A clip's frame becomes either an exposure-window average (probability ``prob_video``) or a photo blurred
    by camera shake. Training crops a ``gt_size`` square (the blur is made on a slightly larger region so that its
    borders do not show), then flips, rotates and permutes RGB like ``GoProDataset``.

    Samples: ``lq``, ``gt`` (3, H, W) float RGB in [0, 1], ``lq_path``, ``gt_path`` (the source file), ``key``
    (``<source>/<index>``) and, with ``use_flow``, ``flow`` (4, H, W): the motion from the sharp target's position
    (the exposure's centre frame; a shake's mean position, or with ``shake_anchor: middle`` its middle) to its start
    and end ``(u_prev, v_prev, u_next, v_next)`` in pixels, for SVDN's position loss.

    Args:
        opt (dict): Config for the dataset. Keys:
            dataroot (str | list[str]): Folders (or files) of sharp photos and clips (module docstring).
            phase (str): Set by BasicSR. Default: 'test'.
            gt_size (int): Crop size; None (outside training): whole images. Required in training.
            num_samples (int): Distinct samples per epoch. Default: 100 x the number of items.
            prob_photo (float): Probability that a sample comes from the photos rather than the clips' frames (when
                there are both); None: every photo and every clip frame is drawn equally often. Default: None.
            seed (int): Seed of every sample's randomness. Default: 0.
            detect_cuts (bool): Find scene cuts in clips on construction (reads every frame once). Default: True.
            use_flow (bool): Also return 'flow'. Default: False.
            use_hflip, use_rot, use_channel_permute (bool): Augmentations as in ``GoProDataset``. Default: False.
            crop_margin (int): Extra pixels around the crop the blur is made on. Default: 16.
            frame_cache_mb (int): Decoded photos and frames (of frame folders) kept per loader worker, in MiB; the
                least recently used go first; 0: decode every time. Video files are decoded whole once per worker
                either way. Default: 256.
            shake_length, prob_sharp, prob_spatial, prob_video, video_window, video_interp, gamma,
            highlight_threshold, highlight_gain, prob_noise, noise_shot, noise_read, prob_jpeg, jpeg_quality,
            shake_anchor:
                The synthesis settings (``blur_synthesis.SynthConfig``, with its defaults).
    """

    OPTION_KEYS = ('dataroot', 'gt_size', 'num_samples', 'prob_photo', 'seed', 'detect_cuts', 'use_flow', 'use_hflip',
                   'use_rot', 'use_channel_permute', 'crop_margin', 'frame_cache_mb') + tuple(
                       SynthConfig.__dataclass_fields__)

    def __init__(self, opt):
        super().__init__()
        check_option_keys(opt, self.OPTION_KEYS, 'MotionBlurSynthDataset')
        self.opt = opt
        self.is_train = opt.get('phase', 'test') == 'train'
        self.cfg = SynthConfig.from_options(opt)
        self.gt_size = opt.get('gt_size')
        if self.is_train and self.gt_size is None:
            raise ValueError("MotionBlurSynthDataset: the option 'gt_size' (training crop size) is required when "
                             "phase is 'train'")
        if not opt.get('dataroot'):
            raise ValueError("MotionBlurSynthDataset needs the option 'dataroot' (folders of sharp images/videos)")
        roots = opt['dataroot'] if isinstance(opt['dataroot'], (list, tuple)) else [opt['dataroot']]
        self.seed = int(opt.get('seed', 0))
        self.margin = int(opt.get('crop_margin', 16))
        self.prob_photo = check_value('MotionBlurSynthDataset: prob_photo', opt.get('prob_photo'),
                                      number(0, 1, allow=(None, )))
        cache_mb = check_value('MotionBlurSynthDataset: frame_cache_mb', opt.get('frame_cache_mb', 256), NON_NEGATIVE)
        self.cache = FrameCache(cache_mb * 2**20)
        self.photos, self.clips = scan_sources(list(roots))
        self._frames = {}  # clip index -> decoded frames of a video file (per worker)
        self.items = [('photo', k, 0, (0, 1)) for k in range(len(self.photos))]
        for c, clip in enumerate(self.clips):
            frames = self._clip_frames(c) if isinstance(clip, str) else clip
            for start, stop in clip_segments(frames, opt.get('detect_cuts', True)):
                self.items += [('clip', c, i, (start, stop)) for i in range(start, stop)]
        self.num_samples = int(opt.get('num_samples') or 100 * len(self.items))
        self.dis = None

    def __getstate__(self):  # the workers decode their own frames and make their own DIS (not picklable)
        return dict(self.__dict__, _frames={}, dis=None, cache=FrameCache(self.cache.max_bytes))

    def _clip_frames(self, c):
        clip = self.clips[c]
        if not isinstance(clip, str):
            return clip
        if c not in self._frames:
            self._frames[c] = read_video(clip)
        return self._frames[c]

    def _frame(self, c, i):
        frame = self._clip_frames(c)[i]
        return self.cache.get(frame, read_frame) if isinstance(frame, str) else frame

    def _source(self, item):
        kind, k, i, _ = item
        if kind == 'photo':
            return self.photos[k]
        clip = self.clips[k]
        return clip if isinstance(clip, str) else clip[i]

    def _crop(self, imgs, rng, name):
        """The same random region of every image in ``imgs``: ``gt_size`` plus the margin, within the image."""
        h, w = imgs[0].shape[:2]
        if self.gt_size is None:
            return imgs, 0
        if min(h, w) < self.gt_size:
            raise ValueError(f'{name} is {h}x{w} (h x w), smaller than gt_size {self.gt_size}; remove it or lower '
                             'gt_size')
        margin = min(self.margin, (min(h, w) - self.gt_size) // 2)
        size = self.gt_size + 2 * margin
        with seeded_python_random(int(rng.integers(2**62))):
            gts, lq = paired_random_crop(list(imgs), imgs[0], size, 1, name)
        return (gts if isinstance(gts, list) else [gts]), margin

    def _item(self, index, rng):
        """The source item of sample ``index`` (class docstring); draws from ``rng`` only with ``prob_photo``."""
        num_photos = len(self.photos)
        if self.prob_photo is None or not num_photos or num_photos == len(self.items):
            return self.items[index % len(self.items)]
        if rng.uniform() < self.prob_photo:
            return self.items[index % num_photos]
        return self.items[num_photos + index % (len(self.items) - num_photos)]

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, index])
        item = self._item(index, rng)
        kind, c, i, (start, stop) = item
        name = self._source(item)
        if kind == 'clip' and rng.uniform() < self.cfg.prob_video:
            n = odd_window(rng, self.cfg.video_window, 2 * min(i - start, stop - 1 - i) + 1)
            frames, margin = self._crop([self._frame(c, j) for j in range(i - n // 2, i + n // 2 + 1)], rng, name)
            self.dis = self.dis or cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            lq, gt, flow = window_pair(rng, frames, self.cfg, self.dis)
        else:
            img = self.cache.get(name, read_frame) if kind == 'photo' else self._frame(c, i)
            (img, ), margin = self._crop([img], rng, name)
            lq, gt, flow = shake_pair(rng, img.astype(np.float32) / 255.0, self.cfg)
        if margin:
            lq, gt, flow = (x[margin:-margin, margin:-margin] for x in (lq, gt, flow))
        if self.is_train:
            hflip, rot = self.opt.get('use_hflip', False), self.opt.get('use_rot', False)
            with seeded_python_random(int(rng.integers(2**62))):
                flows = [np.ascontiguousarray(flow[..., :2]), np.ascontiguousarray(flow[..., 2:])]
                (gt, lq), flows = augment([gt, lq], hflip, rot, flows=flows)
            flow = np.concatenate(flows, axis=2)
            if self.opt.get('use_channel_permute', False):
                perm = rng.permutation(3)
                gt, lq = gt[..., perm], lq[..., perm]
        gt, lq = img2tensor([gt, lq], bgr2rgb=True, float32=True)  # (3, h, w) RGB
        out = {'lq': lq, 'gt': gt, 'lq_path': name, 'gt_path': name, 'key': f'{osp.basename(name)}/{index}'}
        if self.opt.get('use_flow', False):
            out['flow'] = img2tensor(np.ascontiguousarray(flow), bgr2rgb=False, float32=True)  # (4, h, w)
        return out

    def __len__(self):
        return self.num_samples
