"""REDS (Nah et al., NTIRE 2019/2020 "REalistic and Dynamic Scenes"), the deblurring track: 240 training and 30
validation clips of 100 blurry/sharp 1280x720 frames.

Layout (as released)::

    <REDS>/train_blur/<clip>/<frame>.png      240 clips '000'..'239', frames '00000000.png'..'00000099.png'
    <REDS>/train_sharp/<clip>/<frame>.png     the same names
    <REDS>/val_blur/<clip>/<frame>.png        30 clips '000'..'029'
    <REDS>/val_sharp/<clip>/<frame>.png

The blurry frames are also distributed as JPEGs (``train_blur_jpeg/<clip>/<frame>.jpg``): frames pair by name without
extension, so a ``.jpg`` blurry frame pairs with its ``.png`` sharp frame. The datasets take BasicSR's REDSDataset
options: ``dataroot_lq`` (the blurry clips' folder, e.g. ``datasets/REDS/train_blur``) and ``dataroot_gt`` (the sharp
ones, ``datasets/REDS/train_sharp``), or with ``io_backend: {type: lmdb}`` the ``.lmdb`` folders that
``scripts/make_lmdb.py --layout reds`` writes, keyed ``<clip>/<frame>`` (``000/00000000``, the DVD LMDBs' scheme);
``meta_info_file`` selects clips (the first word of each line: a list of clip names, or BasicSR's
``meta_info_REDS_GT.txt``-style lines ``000 100 (720,1280,3)``). :func:`scan_reds` is the one implementation of the
layout (validation included); the folder, or the LMDBs' key lists, is validated on construction and every error
names the folder, the clip and the frames at fault.

:class:`REDSDeblurDataset` gives clips of ``num_frame`` consecutive frames (training; ``num_frame: 1`` gives images),
:class:`REDSDeblurTestDataset` whole clips, one sample each, for BasicSR's ``VideoRecurrentModel`` validation. Both
scan with ``layout_scan`` and read with ``frame_reader`` (the components every deblurzoo dataset uses).

Colour jitter (``color_jitter``): the paper varies "image brightness, hue, saturation and contrast by small amounts
for every crop". One set of factors is drawn per sample (from Python's ``random``, like the crop, so that BasicSR's
per-worker seeding covers it), the way torchvision's ``ColorJitter`` draws them -- brightness, contrast and
saturation factors uniform in ``[max(0, 1 - a), 1 + a]``, the hue shift uniform in ``[-a, a]`` -- and applied in that
fixed order (torchvision's ``adjust_*`` functions) to every blurry frame of the sample alike, then clamped to
[0, 1]. By default the same factors apply to the blurry input and the sharp target alike, as the paper jitters "every
image crop" and the authors' released TensorFlow code jitters both: the net learns to deblur, not to undo a colour
shift. ``color_jitter_gt: false`` jitters the blurry input only, for a net that should also learn to restore the
sharp frames' true colours from slightly off-colour input (a departure from the paper).
Suggested amounts: ``{brightness: 0.05, contrast: 0.05, saturation: 0.05, hue: 0.02}`` (:data:`SUGGESTED_JITTER`).
"""
import math
import random
from collections import OrderedDict
from os import path as osp

import torchvision.transforms.v2.functional as TF
from torch.utils import data as data

from basicsr.utils.registry import DATASET_REGISTRY
from .data_util import check_option_keys, report
from .frame_reader import (ClipIndex, FrameReader, SequenceIndex, WholeSequenceDataset, load_sequences,
                           sequence_groups)
from .layout_scan import compare_frames, frames_in, list_sequences, listing, natural_key, pick_sequences, read_keys
from .safe_io import shown

LAYOUT = ('<REDS>/{train,val}_blur/<clip>/<frame>.png (or {train,val}_blur_jpeg/<clip>/<frame>.jpg) and '
          '<REDS>/{train,val}_sharp/<clip>/<frame>.png, e.g. train_blur/000/00000000.png (the REDS layout)')
JITTER_KEYS = ('brightness', 'contrast', 'saturation', 'hue')
SUGGESTED_JITTER = {'brightness': 0.05, 'contrast': 0.05, 'saturation': 0.05, 'hue': 0.02}


def reds_folders(root, split):
    """{'lq': the blurry clips' folder, 'gt': the sharp clips' folder} of a REDS split.

    The blurry folder is ``<root>/<split>_blur`` or, failing that, ``<root>/<split>_blur_jpeg``; the sharp one
    ``<root>/<split>_sharp``. Both are also looked for one level down (``<root>/<split>/<split>_blur``), as some copies
    are unpacked. Raises a FileNotFoundError naming the folders tried.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'REDS root not found: {shown(root)}; expected {LAYOUT}')
    found = {}
    for role, names in (('lq', (f'{split}_blur', f'{split}_blur_jpeg')), ('gt', (f'{split}_sharp', ))):
        tried = [osp.join(parent, name) for parent in (root, osp.join(root, split)) for name in names]
        found[role] = next((path for path in tried if osp.isdir(path)), None)
        if found[role] is None:
            raise FileNotFoundError(f"REDS split '{split}' has no {'blurry' if role == 'lq' else 'sharp'} folder in "
                                    f"{shown(root)}: none of {listing(tried)} exists; expected {LAYOUT}")
    return found


def scan_reds(lq_root, gt_root, clips=None, problems=None):
    """Scan and validate a REDS split: ``lq_root`` (``train_blur``) and ``gt_root`` (``train_sharp``) folders of clips.

    Both folders must hold the same clip folders (or at least ``clips``), and each clip the same non-empty set of
    frames in both (paired by name without extension); errors name the folders, the clip and the unpaired frames.

    Args:
        lq_root (str): The blurry clips' folder.
        gt_root (str): The sharp clips' folder.
        clips (list[str] | None): Clips to scan, in this order; each must be in both folders. None: every clip,
            sorted. Default: None.
        problems (Problems | None): Record the problems of every clip in this ``data_util.Problems`` and return the
            usable frames instead of raising the first. Default: None.

    Returns:
        OrderedDict[str, list[dict]]: {clip: its frames, sorted: [{'lq_path', 'gt_path', 'frame' (the name without
        extension)}]}.
    """
    lq_clips, gt_clips = list_sequences(lq_root, layout=LAYOUT), list_sequences(gt_root, layout=LAYOUT)
    if clips is None:
        unpaired = [(lq_root, gt_root, sorted(set(lq_clips) - set(gt_clips))),
                    (gt_root, lq_root, sorted(set(gt_clips) - set(lq_clips)))]
        messages = [
            f'{len(names)} clip(s) of {shown(a)} are not in {shown(b)}: {listing(names)}' for a, b, names in unpaired
            if names
        ]
        if messages:
            report(
                problems, ValueError('the blurry and the sharp clips differ: ' + '; '.join(messages)),
                [f'{shown(osp.join(a, name))}: clip not in {shown(b)}' for a, b, names in unpaired for name in names])
        clips = [clip for clip in lq_clips if clip in gt_clips]  # the paired ones
    else:
        clips = pick_sequences(lq_clips, clips, lq_root, problems)
        clips = pick_sequences(gt_clips, clips, gt_root, problems)
    scanned = OrderedDict()
    for clip in clips:
        lq_dir, gt_dir = osp.join(lq_root, clip), osp.join(gt_root, clip)
        lq, gt = frames_in(lq_dir), frames_in(gt_dir)  # {name w/o extension: file}
        frames = compare_frames(clip, lq, gt, 'blur', 'sharp', f'in {lq_dir} and {gt_dir}', problems, (lq_dir, gt_dir))
        if frames:
            scanned[clip] = [{
                'lq_path': osp.join(lq_dir, lq[frame]),
                'gt_path': osp.join(gt_dir, gt[frame]),
                'frame': frame
            } for frame in sorted(frames, key=natural_key)]
    return scanned


def parse_color_jitter(amounts, owner='color_jitter'):
    """Validate a ``color_jitter`` option: None (off) or a dict of amounts among brightness, contrast, saturation (>= 0)
    and hue (in [0, 0.5]); absent amounts are 0. Returns the four amounts as floats, or None."""
    if amounts is None:
        return None
    if not isinstance(amounts, dict) or not amounts:
        raise ValueError(f'{owner}: color_jitter must be null (off) or a dict of amounts with keys among '
                         f'{", ".join(JITTER_KEYS)} (e.g. {SUGGESTED_JITTER}), got {amounts!r}')
    unknown = [key for key in amounts if key not in JITTER_KEYS]
    if unknown:
        raise ValueError(f"{owner}: unknown color_jitter key(s) {', '.join(map(repr, unknown))}; accepted: "
                         f"{', '.join(JITTER_KEYS)}")
    parsed = {}
    for key in JITTER_KEYS:
        value = amounts.get(key) or 0
        top = 0.5 if key == 'hue' else math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
            bound = '[0, 0.5] (a fraction of the hue circle)' if key == 'hue' else '>= 0'
            raise ValueError(f'{owner}: color_jitter {key} must be a number {bound}, got {amounts[key]!r}')
        parsed[key] = float(value)
    return parsed


def draw_color_jitter(amounts):
    """One sample's jitter factors, drawn with Python's ``random`` as torchvision's ``ColorJitter`` draws them:
    brightness, contrast and saturation uniform in ``[max(0, 1 - a), 1 + a]``, hue uniform in ``[-a, a]``."""
    factors = {key: random.uniform(max(0., 1 - amounts[key]), 1 + amounts[key]) for key in JITTER_KEYS[:3]}
    factors['hue'] = random.uniform(-amounts['hue'], amounts['hue'])
    return factors


def apply_color_jitter(frames, factors):
    """``frames`` (..., 3, H, W) float RGB in [0, 1] with brightness, contrast, saturation and hue adjusted by
    ``factors`` (torchvision's ``adjust_*``, in that order; every frame alike), clamped to [0, 1]."""
    for key, adjust, identity in (('brightness', TF.adjust_brightness, 1), ('contrast', TF.adjust_contrast, 1),
                                  ('saturation', TF.adjust_saturation, 1), ('hue', TF.adjust_hue, 0)):
        if factors[key] != identity:
            frames = adjust(frames, factors[key])
    return frames.clamp(0, 1)


def load_reds(opt, reader, cls_name, problems=None):
    """The validated clips of a REDS dataset (``frame_reader.load_sequences``): from the folders ``dataroot_lq`` and
    ``dataroot_gt`` (:func:`scan_reds`) or the LMDBs' keys, the clips of ``meta_info_file`` (default: all); returns
    (clips, where)."""
    meta = opt.get('meta_info_file')
    listed = read_keys(meta) if meta else None

    def scan_disk():
        for option, example in (('dataroot_lq', 'datasets/REDS/train_blur'), ('dataroot_gt',
                                                                              'datasets/REDS/train_sharp')):
            if not opt.get(option):
                raise ValueError(f"{cls_name} needs the option '{option}' (e.g. {example}; {LAYOUT})")
        return scan_reds(opt['dataroot_lq'], opt['dataroot_gt'], listed, problems), opt['dataroot_lq']

    def select(names, where):
        return pick_sequences(names, listed, where, problems)

    return load_sequences(reader, opt, scan_disk, select, problems)


@DATASET_REGISTRY.register()
class REDSDeblurDataset(data.Dataset):
    """REDS clips: every run of ``num_frame`` consecutive blurry frames of every clip with their sharp frames, from
    the ``train_blur``/``train_sharp`` folders or from LMDBs (see the module docstring for the layout).

    Samples are the clips of each REDS clip, in order (100 frames give 100 - num_frame + 1). Training
    (``phase: train``) crops every frame at one random location (BasicSR's ``paired_random_crop`` on the lists),
    flips/rotates them all alike (``augment``), optionally permutes RGB, reverses the order (``random_reverse``) and
    colour-jitters the sample (``color_jitter``: one set of factors for every frame; see the module docstring).
    Otherwise it returns full frames. Samples: ``lq`` (T, 3, H, W) float RGB in [0, 1], or (3, H, W) images when
    ``num_frame`` is 1; ``gt`` the same shape, or (3, H, W) the centre frame with ``center_frame_only``; ``key``
    ('<clip>/<first frame>', e.g. '000/00000042'), ``folder`` (the clip), ``lq_path``/``gt_path`` (the centre frame's
    path; its key with lmdb).

    Args:
        opt (dict): Config for the dataset. Keys:
            dataroot_lq (str): The blurry clips' folder (``datasets/REDS/train_blur`` or ``train_blur_jpeg``); with
                lmdb its .lmdb (``scripts/make_lmdb.py --layout reds``), keyed '<clip>/<frame>'.
            dataroot_gt (str): The sharp clips' folder (``datasets/REDS/train_sharp``), or its .lmdb.
            phase (str): Set by BasicSR from the datasets section ('train', 'val', 'test'). Default: 'test'.
            meta_info_file (str): The clips to use, the first word of each line ('#' comments). Default: None (all).
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}`` (other keys go to ``lmdb.open``).
                Default: ``{type: disk}``.
            num_frame (int): Frames per clip, T (required, >= 1; 1 gives images).
            center_frame_only (bool): ``gt`` is the clip's centre frame (3, H, W); needs an odd ``num_frame``.
                Default: False (all T frames).
            gt_size (int): Training crop size (required in training; the paper's: 320).
            use_hflip (bool): Training: random horizontal flips (the same for every frame). Default: False.
            use_rot (bool): Training: random vertical flips and transpositions, the same for every frame.
                Default: False.
            use_channel_permute (bool): Training: a random RGB permutation, the same for every frame of lq and gt.
                Default: False.
            random_reverse (bool): Training: reverse the clip's temporal order with probability 0.5. Default: False.
            color_jitter (dict): Training: jitter amounts ``{brightness, contrast, saturation, hue}`` (absent: 0),
                e.g. ``{brightness: 0.05, contrast: 0.05, saturation: 0.05, hue: 0.02}``. Default: None (off).
            color_jitter_gt (bool): Apply the same jitter to ``gt`` as well (the paper and the authors' released
                code); False: the blurry input only (see the module docstring). Setting it true needs
                ``color_jitter``. Default: True.
            check_sizes (bool): On construction, check that all frames of a clip (lq and gt) have one size (from the
                PNG headers or the LMDBs' meta_info) and, in training, are at least ``gt_size``; otherwise each
                sample is checked when read. Default: False.
    """

    OPTION_KEYS = ('dataroot_lq', 'dataroot_gt', 'meta_info_file', 'io_backend', 'num_frame', 'center_frame_only',
                   'gt_size', 'use_hflip', 'use_rot', 'use_channel_permute', 'random_reverse', 'color_jitter',
                   'color_jitter_gt', 'check_sizes')

    def __init__(self, opt, problems=None):
        super().__init__()
        check_option_keys(opt, self.OPTION_KEYS, 'REDSDeblurDataset')
        self.opt = opt
        owner = f"{type(self).__name__} '{opt.get('name', '')}'"
        self.color_jitter = parse_color_jitter(opt.get('color_jitter'), owner)
        self.color_jitter_gt = bool(opt.get('color_jitter_gt', True))
        if opt.get('color_jitter_gt') and self.color_jitter is None:
            raise ValueError(f'{owner}: color_jitter_gt is set but color_jitter is not (no jitter to apply)')
        self.clip_index = ClipIndex(opt, owner, single_frame_images=True)
        self.reader = FrameReader(opt, 'REDSDeblurDataset')
        clips, where = load_reds(opt, self.reader, 'REDSDeblurDataset', problems)
        if opt.get('check_sizes', False):  # every frame of a clip: one size (and >= gt_size in training)
            self.reader.check_stored_sizes(sequence_groups(clips), problems)
        self.clip_index.index(clips, where, 'meta_info_file', problems)
        self.sequences, self.clips = self.clip_index.sequences, self.clip_index.clips

    def file_groups(self):
        """Every file the dataset reads, as (clip, [(role, path)]): all frames of a clip need one size."""
        return sequence_groups(self.sequences)

    def __getitem__(self, index):
        key, clip, frames = self.clip_index.pick(index, self.reader.is_train)  # reversed at random with random_reverse
        img_lqs, img_gts = self.reader.read_clip(frames)  # (T, 3, h, w) RGB, cropped and augmented in training
        if self.reader.is_train and self.color_jitter is not None:  # one set of factors for the whole sample
            factors = draw_color_jitter(self.color_jitter)
            img_lqs = apply_color_jitter(img_lqs, factors)
            if self.color_jitter_gt:
                img_gts = apply_color_jitter(img_gts, factors)
        return self.clip_index.sample(key, clip, frames, img_lqs, img_gts)

    def __len__(self):
        return len(self.clips)


@DATASET_REGISTRY.register()
class REDSDeblurTestDataset(WholeSequenceDataset):
    """Whole REDS clips (e.g. the 30 ``val_blur``/``val_sharp`` clips), one sample each, for BasicSR's
    ``VideoRecurrentModel`` validation (and deblurzoo's ``VideoDeblurModel``).

    Samples: ``lq``, ``gt`` (T, 3, H, W) float RGB in [0, 1], T the clip's frame count (or ``max_frames``);
    ``folder`` (the clip); ``lq_path``/``gt_path`` (the clip's frame folder; its name with lmdb). Frames are read when
    a sample is requested. ``data_info['folder']`` lists each clip once per frame (``VideoRecurrentModel`` sizes its
    metrics with it); ``data_info['lq_path']``/``['gt_path']`` are the frames. Nothing is cropped or augmented.

    Args:
        opt (dict): Config for the dataset. Keys:
            dataroot_lq (str): The blurry clips' folder (``datasets/REDS/val_blur``), or its .lmdb.
            dataroot_gt (str): The sharp clips' folder (``datasets/REDS/val_sharp``), or its .lmdb.
            meta_info_file (str): The clips to use, the first word of each line. Default: None (all).
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``. Default: ``{type: disk}``.
            max_frames (int): Use only the first ``max_frames`` frames of every clip (cheap validation).
                Default: None (all).
    """

    OPTION_KEYS = ('dataroot_lq', 'dataroot_gt', 'meta_info_file', 'io_backend', 'max_frames')

    def __init__(self, opt, problems=None):
        super().__init__()
        check_option_keys(opt, self.OPTION_KEYS, 'REDSDeblurTestDataset')
        self.opt = opt
        owner = f"REDSDeblurTestDataset '{opt.get('name', '')}'"
        self.whole = SequenceIndex(opt, owner)
        self.reader = FrameReader(opt, 'REDSDeblurTestDataset', crop=False)  # whole frames, whatever the phase
        clips, where = load_reds(opt, self.reader, 'REDSDeblurTestDataset', problems)
        self.whole.index(clips, where)
        self.sequences, self.folders, self.data_info = self.whole.sequences, self.whole.folders, self.whole.data_info

