"""DVD (Su et al., "Deep Video Deblurring", CVPR 2017): 71 blurry/sharp video sequences of 1280x720 frames.

Layout (``DeepVideoDeblurring_Dataset/quantitative_datasets``, as released)::

    <dataroot>/<seq>/input/<frame>.jpg        blurry frames, e.g. IMG_0003/input/00042.jpg
    <dataroot>/<seq>/GT/<frame>.jpg           sharp frames, the same file names

The standard test split is the 10 sequences of ``meta_info/meta_info_DVD_test.txt`` (the authors' list); training
uses the other 61. :func:`scan_video_sequences` is the one implementation of that layout (validation included), and
it reads any folder of ``<seq>/{<lq_folder>,<gt_folder>}/<frame>.<png|jpg>`` sequences: a GoPro-layout split folder
(``GOPRO_Large/train`` with ``blur``/``sharp``) as well. ``scripts/make_lmdb.py --layout dvd`` packs a partition into
LMDBs keyed ``<seq>/<frame>``, which both datasets read too.

:class:`DVDDataset` gives clips of ``num_frame`` consecutive frames (training), :class:`DVDTestDataset` whole
sequences, one sample each, for BasicSR's ``VideoRecurrentModel`` validation.
"""
import os
import random
from collections import OrderedDict
from os import path as osp

import torch
from torch.utils import data as data

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import get_root_logger, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from .data_util import check_option_keys, report
from .gopro_dataset import (GoProDataset, _compare_frames, _listing, _lmdb_keys, _natural_key, png_size, read_keys,
                            sequence_frames, split_key)

LAYOUT = '<dataroot>/<seq>/{input,GT}/<frame>.jpg (the DeepVideoDeblurring_Dataset/quantitative_datasets layout)'
DVD_TEST_META_INFO = osp.join(osp.dirname(osp.abspath(__file__)), 'meta_info', 'meta_info_DVD_test.txt')
PARTITIONS = ('train', 'test', 'all')


def _layout(lq_folder, gt_folder):
    if (lq_folder, gt_folder) == ('input', 'GT'):
        return LAYOUT
    return f'<dataroot>/<seq>/{{{lq_folder},{gt_folder}}}/<frame>.<png|jpg>'


def list_sequences(root, lq_folder='input', gt_folder='GT', layout=None):
    """Sorted names of the sequence folders in ``root`` (every sub-folder not starting with '.').

    Raises a FileNotFoundError naming ``root`` and the expected layout (``layout``, or the DVD layout with
    ``lq_folder``/``gt_folder``) if it does not exist or holds no folder.
    """
    layout = layout or _layout(lq_folder, gt_folder)
    if not osp.isdir(root):
        raise FileNotFoundError(f'video dataroot not found: {root}; expected {layout}')
    seqs = sorted(d for d in os.listdir(root) if not d.startswith('.') and osp.isdir(osp.join(root, d)))
    if not seqs:
        raise FileNotFoundError(f'no sequence folders in {root}; expected {layout}')
    return seqs


def pick_sequences(found, sequences, where, problems=None):
    """``sequences`` among ``found`` (the sequences of ``where``, named in errors), in their order, duplicates dropped;
    every one must be in ``found`` (with ``problems``, a ``data_util.Problems``, the others are recorded there and
    left out). None: all of ``found``."""
    if sequences is None:
        return list(found)
    sequences = list(OrderedDict.fromkeys(sequences))
    found_set = set(found)
    unknown = [s for s in sequences if s not in found_set]
    if unknown:
        report(problems,
               ValueError(f'{len(unknown)} sequence(s) not found in {where}: {_listing(unknown)} '
                          f'(it has {len(found)}: {_listing(found)})'),
               [f'{where}: has no sequence {s} (selected)' for s in unknown])
        sequences = [s for s in sequences if s in found_set]
    if not sequences:
        raise ValueError(f'no sequences selected in {where}')
    return sequences


def scan_video_sequences(root, lq_folder='input', gt_folder='GT', sequences=None, problems=None):
    """Scan and validate a folder of ``<seq>/{<lq_folder>,<gt_folder>}/<frame>.<png|jpg>`` video sequences.

    Every selected sequence must have both folders, holding the same (non-empty) set of frame file names; errors
    name the root, the sequence and the unpaired frames.

    Args:
        root (str): The folder of sequences (DVD: ``DeepVideoDeblurring_Dataset/quantitative_datasets``).
        lq_folder (str): Blurry frames' folder in each sequence. Default: 'input' (DVD).
        gt_folder (str): Sharp frames' folder in each sequence. Default: 'GT' (DVD).
        sequences (list[str] | None): Sequences to scan, in this order; every one must be in ``root``. None: every
            sequence folder of ``root``, sorted. Default: None.
        problems (Problems | None): Record the problems of every sequence in this ``data_util.Problems`` and return
            the usable frames instead of raising the first. Default: None.

    Returns:
        OrderedDict[str, list[str]]: {sequence: its frame file names, sorted (naturally: '2.jpg' before '10.jpg')}.
    """
    sequences = pick_sequences(list_sequences(root, lq_folder, gt_folder), sequences, root, problems)
    frames = OrderedDict()
    for seq in sequences:
        names = sequence_frames(root, seq, lq_folder, gt_folder, _layout(lq_folder, gt_folder), problems)
        if names:
            frames[seq] = sorted(names.values(), key=_natural_key)
    return frames


def select_sequences(names, partition, meta_info_file=None, where='the dataroot', problems=None):
    """The sequences of ``partition`` among ``names``.

    Args:
        names (list[str]): The available sequences (of a folder or an lmdb).
        partition (str): 'test': the sequences listed in ``meta_info_file`` (every one must be available);
            'train': every available sequence not listed; 'all': every available sequence.
        meta_info_file (str | None): Test sequences, one a line ('#' comments). None: the DVD test split
            (``meta_info/meta_info_DVD_test.txt``). Default: None.
        where (str): What ``names`` came from, for error messages. Default: 'the dataroot'.
        problems (Problems | None): Record missing test sequences in this ``data_util.Problems`` and leave them out
            instead of raising. Default: None.

    Returns:
        list[str]: The selected sequences, sorted.
    """
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {', '.join(PARTITIONS)}, got '{partition}'")
    names = sorted(names)
    available = set(names)
    if partition == 'all':
        return names
    meta_info_file = meta_info_file or DVD_TEST_META_INFO
    listed = read_keys(meta_info_file)
    if partition == 'test':
        missing = [s for s in listed if s not in available]
        if missing:
            report(problems,
                   ValueError(f'{len(missing)} test sequence(s) of {meta_info_file} are not in {where}: '
                              f'{_listing(missing)} (it has {len(names)}: {_listing(names)})'),
                   [f'{meta_info_file}: test sequence {s} is not in {where}' for s in missing])
        return sorted(set(listed) & available)
    absent = [s for s in listed if s not in available]
    if absent:
        get_root_logger().warning(f'{len(absent)} of the {len(listed)} test sequences of {meta_info_file} are not in '
                                  f"{where} (it is partition 'train': every sequence not listed): {_listing(absent)}")
    test_set = set(listed)
    selected = [s for s in names if s not in test_set]
    if not selected:
        raise ValueError(f"partition 'train' of {where} is empty: all its {len(names)} sequences are test sequences "
                         f"of {meta_info_file}; use partition 'all' or 'test'")
    return selected


def scan_partition(root, partition='all', meta_info_file=None, lq_folder='input', gt_folder='GT', problems=None):
    """:func:`select_sequences` of ``root``'s sequence folders, then :func:`scan_video_sequences` of them."""
    selected = select_sequences(list_sequences(root, lq_folder, gt_folder), partition, meta_info_file, root, problems)
    return scan_video_sequences(root, lq_folder, gt_folder, sequences=selected, problems=problems)


def lmdb_sequences(lq_keys, gt_keys, lq_source, gt_source, problems=None):
    """{sequence: its frames (key stems), sorted} from two lmdbs' ``<seq>/<frame>`` keys, which must pair up (with
    ``problems``, a ``data_util.Problems``, unpaired frames are recorded there and left out)."""
    grouped = {}
    for keys, source in ((lq_keys, lq_source), (gt_keys, gt_source)):
        grouped[source] = {}
        for key in keys:
            seq, frame = split_key(key, source)
            grouped[source].setdefault(seq, []).append(frame)
    lq, gt = grouped[lq_source], grouped[gt_source]
    paired = OrderedDict()
    for seq in sorted(set(lq) | set(gt)):
        frames = _compare_frames(seq, lq.get(seq, ()), gt.get(seq, ()), 'lq', 'gt',
                                 f'lmdbs {lq_source} and {gt_source}', problems,
                                 (f'{lq_source}:{seq}', f'{gt_source}:{seq}'))
        if frames:
            paired[seq] = sorted(frames, key=_natural_key)
    return paired


class _VideoFrames(data.Dataset):
    """Validated sequences of paired frames from a folder layout or from LMDBs keyed ``<seq>/<frame>`` (the base of
    the video datasets: DVD's here, REDS' in ``reds_dataset.py``).

    A folder layout is a mixin listed before the behaviour (:class:`_VideoClips` or :class:`_WholeSequences`) that
    implements :meth:`_scan_disk` (the disk backend's sequences) and :meth:`_select` (the sequences taken from the
    LMDBs), and optionally :meth:`_setup_layout` (its options). Sets ``self.sequences``: {seq: [{'lq_path', 'gt_path',
    'frame'}]} (paths are LMDB keys with lmdb), and reads frames with GoProDataset's readers and size checks (errors
    name the file, or '<lmdb>:<key>').
    """

    OPTION_KEYS = ()
    SELECTION_OPTIONS = 'meta_info_file'  # the options that leave sequences out, named in errors

    # GoProDataset's reading and checking, shared without being a GoProDataset (these use file_client, backend,
    # io_backend_opt, db_paths, is_train and gt_size)
    _open = GoProDataset._open
    _read = GoProDataset._read
    _name = GoProDataset._name
    _read_image = GoProDataset._read_image
    inspect_file = GoProDataset.inspect_file
    size_problems = GoProDataset.size_problems
    _check_pair = GoProDataset._check_pair

    def __init__(self, opt, problems=None):
        super().__init__()
        self.cls_name = type(self).__name__
        check_option_keys(opt, self.OPTION_KEYS, self.cls_name)
        self.opt = opt
        self.problems = problems
        self.phase = opt.get('phase', 'test')
        self.is_train = self.phase == 'train'
        self.gt_size = None
        self.partition = None  # the DVD layout's
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})  # a copy: never mutate opt
        self.backend = self.io_backend_opt.pop('type', 'disk')
        self.file_client = None
        self.db_paths = {}
        self._setup_layout()

    # ---------------- the folder layout's hooks

    def _setup_layout(self):
        """Read the layout's options from ``self.opt``."""

    def _scan_disk(self):
        """The validated sequences of the disk backend: ({seq: [{'lq_path', 'gt_path', 'frame'}]}, where: the folder
        named in messages)."""
        raise NotImplementedError

    def _select(self, names, where):
        """The sequences to use among ``names``, those of the LMDBs (``where`` names them in errors)."""
        raise NotImplementedError

    # ----------------

    def _load(self, check_sizes=False):
        """Scan the folder or the lmdbs' key lists; sets ``sequences`` and returns where they came from."""
        opt = self.opt
        if self.backend == 'disk':
            self.sequences, where = self._scan_disk()

            def size_of(role, frame):
                return frame[f'{role}_path'], png_size(frame[f'{role}_path'])
        elif self.backend == 'lmdb':
            lq_keys, lq_shapes = _lmdb_keys(opt.get('dataroot_lq'), 'dataroot_lq')
            gt_keys, gt_shapes = _lmdb_keys(opt.get('dataroot_gt'), 'dataroot_gt')
            self.db_paths = {'lq': opt['dataroot_lq'], 'gt': opt['dataroot_gt']}
            self.io_backend_opt['db_paths'] = list(self.db_paths.values())
            self.io_backend_opt['client_keys'] = list(self.db_paths)
            frames = lmdb_sequences(lq_keys, gt_keys, opt['dataroot_lq'], opt['dataroot_gt'], self.problems)
            where = f"the dataroot_lq lmdb {opt['dataroot_lq']}"
            self.sequences = OrderedDict((seq, [{
                'lq_path': f'{seq}/{frame}',
                'gt_path': f'{seq}/{frame}',
                'frame': frame
            } for frame in frames[seq]]) for seq in self._select(list(frames), where))
            shapes = {'lq': lq_shapes, 'gt': gt_shapes}

            def size_of(role, frame):  # from the (h,w,c) of the lmdb's meta_info.txt
                return f"{self.db_paths[role]}:{frame[f'{role}_path']}", shapes[role].get(frame[f'{role}_path'])
        else:
            raise ValueError(f"io_backend type '{self.backend}' is not supported by {self.cls_name}; use disk or lmdb")
        if check_sizes:  # every frame of a sequence: the size of its first input frame (and >= gt_size in training)
            for frames in self.sequences.values():
                messages = self.size_problems([size_of(role, frame) for frame in frames for role in ('lq', 'gt')])
                if messages:
                    report(self.problems, ValueError(messages[0]), messages)
        return where

    def file_groups(self):
        """Every file the dataset reads, as (sequence, [(role, path)]): all frames of a sequence need one size (see
        :meth:`GoProDataset.file_groups`)."""
        return [(seq, [(role, frame[f'{role}_path']) for frame in frames for role in ('lq', 'gt')])
                for seq, frames in self.sequences.items()]

    def _read_frames(self, frames):
        """Lists of (H, W, 3) float32 BGR images in [0, 1] of ``frames``' lq and gt, sizes checked."""
        self._open()
        img_lqs = [self._read_image(frame['lq_path'], 'lq') for frame in frames]
        img_gts = [self._read_image(frame['gt_path'], 'gt') for frame in frames]
        sizes = []
        for frame, img_lq, img_gt in zip(frames, img_lqs, img_gts):
            sizes += [(self._name(frame['lq_path'], 'lq'), img_lq.shape[:2]),
                      (self._name(frame['gt_path'], 'gt'), img_gt.shape[:2])]
        self._check_pair(sizes)
        return img_lqs, img_gts

    def _log(self, where, extra=''):
        num_frames = sum(len(frames) for frames in self.sequences.values())
        part = '' if self.partition is None else f"partition '{self.partition}' of "
        get_root_logger().info(f"{self.cls_name} '{self.opt.get('name', '')}': {part}{where}: "
                               f'{len(self.sequences)} sequences, {num_frames} frames{extra}')


class _VideoClips(_VideoFrames):
    """Clips of ``num_frame`` consecutive frames of every sequence, one crop and augmentation for the whole clip
    (DVDDataset's behaviour, documented there; a layout mixin supplies the sequences).

    Subclasses may set ``SINGLE_FRAME_IMAGES`` (``num_frame: 1`` gives (3, h, w) images, not (1, 3, h, w) clips) and
    override :meth:`_color_augment` (training: applied to the (T, 3, h, w) RGB tensors after cropping).
    """

    SINGLE_FRAME_IMAGES = False

    def __init__(self, opt, problems=None):
        super().__init__(opt, problems)
        name = f"{self.cls_name} '{opt.get('name', '')}'"
        num_frame = opt.get('num_frame')
        if num_frame is None or isinstance(num_frame, bool) or not isinstance(num_frame, int) or num_frame < 1:
            raise ValueError(f"{name}: the option 'num_frame' (frames per clip, an int >= 1) is required; "
                             f'got {num_frame!r}')
        self.num_frame = num_frame
        self.center_frame_only = bool(opt.get('center_frame_only', False))
        if self.center_frame_only and num_frame % 2 == 0:
            raise ValueError(f'{name}: center_frame_only needs an odd num_frame (a centre frame), got {num_frame}')
        if self.is_train:
            if opt.get('gt_size') is None:
                raise ValueError(f"{name}: the option 'gt_size' (training crop size) is required when phase is "
                                 "'train'")
            self.gt_size = int(opt['gt_size'])
        where = self._load(check_sizes=opt.get('check_sizes', False))
        short = [(seq, len(frames)) for seq, frames in self.sequences.items() if len(frames) < num_frame]
        if short:
            report(self.problems,
                   ValueError(f'{name}: {len(short)} sequence(s) of {where} have fewer frames than num_frame '
                              f'{num_frame}: {_listing(f"{seq} ({n} frames)" for seq, n in short)}; lower num_frame '
                              f'or leave them out ({self.SELECTION_OPTIONS})'),
                   [f'sequence {seq} of {where}: {n} frame(s), fewer than num_frame {num_frame}' for seq, n in short])
            for seq, _ in short:
                del self.sequences[seq]
        self.clips = [(seq, start) for seq, frames in self.sequences.items()
                      for start in range(len(frames) - num_frame + 1)]
        self._log(where, f', {len(self.clips)} clips of {num_frame}')

    def _color_augment(self, img_lqs, img_gts):
        """Training: photometric augmentation of the (T, 3, h, w) RGB clips, after cropping. Default: none."""
        return img_lqs, img_gts

    def __getitem__(self, index):
        seq, start = self.clips[index]
        frames = self.sequences[seq][start:start + self.num_frame]
        key = f"{seq}/{frames[0]['frame']}"
        if self.is_train and self.opt.get('random_reverse', False) and random.random() < 0.5:
            frames = frames[::-1]
        center = frames[self.num_frame // 2]
        img_lqs, img_gts = self._read_frames(frames)  # T (h, w, 3) BGR each

        if self.is_train:
            # one crop location for every frame of lq and gt (paired_random_crop unpacks lists of one)
            gt_name = self._name(center['gt_path'], 'gt')
            img_gts, img_lqs = paired_random_crop(img_gts, img_lqs, self.gt_size, 1, gt_name)
            img_gts, img_lqs = (v if isinstance(v, list) else [v] for v in (img_gts, img_lqs))
            imgs = augment(img_lqs + img_gts, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
            if self.opt.get('use_channel_permute', False):
                perm = random.sample(range(3), 3)
                imgs = [img[..., perm] for img in imgs]
            img_lqs, img_gts = imgs[:self.num_frame], imgs[self.num_frame:]

        img_lqs = torch.stack(img2tensor(img_lqs, bgr2rgb=True, float32=True))  # (T, 3, h, w) RGB
        img_gts = torch.stack(img2tensor(img_gts, bgr2rgb=True, float32=True))
        if self.is_train:
            img_lqs, img_gts = self._color_augment(img_lqs, img_gts)
        if self.center_frame_only:
            img_gts = img_gts[self.num_frame // 2]
        if self.SINGLE_FRAME_IMAGES and self.num_frame == 1:
            img_lqs, img_gts = img_lqs[0], (img_gts if self.center_frame_only else img_gts[0])
        return {
            'lq': img_lqs,
            'gt': img_gts,
            'key': key,
            'folder': seq,
            'lq_path': center['lq_path'],
            'gt_path': center['gt_path']
        }

    def __len__(self):
        return len(self.clips)


class _WholeSequences(_VideoFrames):
    """One sample per whole sequence (DVDTestDataset's behaviour, documented there; a layout mixin supplies the
    sequences)."""

    def __init__(self, opt, problems=None):
        super().__init__(opt, problems)
        max_frames = opt.get('max_frames')
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                       or max_frames < 1):
            raise ValueError(f"{self.cls_name} '{opt.get('name', '')}': max_frames must be an int >= 1 or null, got "
                             f'{max_frames!r}')
        self.is_train = False  # whole frames, whatever the phase
        where = self._load()
        if max_frames is not None:
            for seq, frames in self.sequences.items():
                self.sequences[seq] = frames[:max_frames]
        self.folders = list(self.sequences)
        self.data_info = {'folder': [], 'lq_path': [], 'gt_path': []}
        for seq, frames in self.sequences.items():
            for frame in frames:
                self.data_info['folder'].append(seq)
                self.data_info['lq_path'].append(frame['lq_path'])
                self.data_info['gt_path'].append(frame['gt_path'])
        self._log(where, '' if max_frames is None else f' (at most {max_frames} a sequence)')

    def __getitem__(self, index):
        seq = self.folders[index]
        frames = self.sequences[seq]
        img_lqs, img_gts = self._read_frames(frames)
        if self.backend == 'disk':  # the sequence's frame folders
            lq_path, gt_path = osp.dirname(frames[0]['lq_path']), osp.dirname(frames[0]['gt_path'])
        else:
            lq_path = gt_path = seq
        return {
            'lq': torch.stack(img2tensor(img_lqs, bgr2rgb=True, float32=True)),  # (T, 3, H, W) RGB
            'gt': torch.stack(img2tensor(img_gts, bgr2rgb=True, float32=True)),
            'folder': seq,
            'lq_path': lq_path,
            'gt_path': gt_path
        }

    def __len__(self):
        return len(self.folders)


class _DVDLayout:
    """The DVD layout (a mixin for :class:`_VideoFrames`): ``dataroot`` is a folder of
    ``<seq>/{<lq_folder>,<gt_folder>}/<frame>`` sequences, of which ``partition`` is used (with lmdb: of the
    LMDBs' sequences)."""

    DEFAULT_PARTITION = None  # None: 'train' if phase is 'train' else 'test'
    SELECTION_OPTIONS = 'partition, meta_info_file'

    def _setup_layout(self):
        opt = self.opt
        self.lq_folder = opt.get('lq_folder', 'input')
        self.gt_folder = opt.get('gt_folder', 'GT')
        self.partition = opt.get('partition') or self.DEFAULT_PARTITION or ('train' if self.is_train else 'test')

    def _scan_disk(self):
        root = self.opt.get('dataroot')
        if not root:
            raise ValueError(f"{self.cls_name} needs the option 'dataroot' (the folder of sequences: "
                             f'{_layout(self.lq_folder, self.gt_folder)})')
        frames = scan_partition(root, self.partition, self.opt.get('meta_info_file'), self.lq_folder, self.gt_folder,
                                self.problems)
        return OrderedDict((seq, [{
            'lq_path': osp.join(root, seq, self.lq_folder, name),
            'gt_path': osp.join(root, seq, self.gt_folder, name),
            'frame': osp.splitext(name)[0]
        } for name in names]) for seq, names in frames.items()), root

    def _select(self, names, where):
        return select_sequences(names, self.partition, self.opt.get('meta_info_file'), where, self.problems)


@DATASET_REGISTRY.register()
class DVDDataset(_DVDLayout, _VideoClips):
    """DVD clips: every run of ``num_frame`` consecutive blurry frames with their sharp frames, from a
    ``quantitative_datasets`` folder or from LMDBs.

    Samples are the clips of each sequence, in order (a sequence of n frames gives n - num_frame + 1). Training
    (``phase: train``) crops every frame of a clip at one random location (BasicSR's ``paired_random_crop`` on the
    lists), flips/rotates them all alike (``augment``), optionally applies one RGB permutation to all and reverses
    the clip's order with probability 0.5 (``random_reverse``, as BasicSR's REDSDataset). Otherwise it returns full
    frames. Samples: ``lq`` (T, 3, H, W) float RGB in [0, 1]; ``gt`` (T, 3, H, W), or (3, H, W) the centre frame
    with ``center_frame_only``; ``key`` ('<seq>/<first frame>', e.g. 'IMG_0003/00042'), ``folder`` (the sequence),
    ``lq_path``/``gt_path`` (the centre frame's path; its key with lmdb).

    Any folder of ``<seq>/{<lq_folder>,<gt_folder>}/<frame>.<png|jpg>`` sequences works, e.g. a GoPro split folder
    (``dataroot: datasets/GOPRO_Large/train``, ``lq_folder: blur``, ``gt_folder: sharp``, ``partition: all``). The
    folder (or the LMDBs' key lists) is validated on construction; errors name the sequence and the frames at fault.

    Args:
        opt (dict): Config for the dataset. Keys:
            dataroot (str): The folder of sequences, ``DeepVideoDeblurring_Dataset/quantitative_datasets`` (disk
                backend).
            phase (str): Set by BasicSR from the datasets section ('train', 'val', 'test'). Default: 'test'.
            lq_folder (str): Blurry frames' folder in each sequence. Default: 'input'.
            gt_folder (str): Sharp frames' folder in each sequence. Default: 'GT'.
            partition (str): 'test' (the sequences of ``meta_info_file``), 'train' (every other sequence) or 'all'.
                Default: 'train' if ``phase`` is 'train' else 'test'.
            meta_info_file (str): The test sequences, one a line. Default: ``deblurzoo/data/meta_info/
                meta_info_DVD_test.txt`` (DVD's 10 test sequences).
            num_frame (int): Frames per clip, T (required, >= 1).
            center_frame_only (bool): ``gt`` is the clip's centre frame (3, H, W), for models restoring the centre
                of T stacked frames; needs an odd ``num_frame``. Default: False (all T frames).
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}`` (other keys go to BasicSR's ``FileClient``).
                Default: ``{type: disk}``.
            dataroot_lq (str): lmdb backend: the blurry frames' .lmdb (``scripts/make_lmdb.py --layout dvd``),
                keyed '<seq>/<frame>'; sequences and frames come from its meta_info.txt.
            dataroot_gt (str): lmdb backend: the sharp frames' .lmdb (the same keys).
            gt_size (int): Training crop size (required in training).
            use_hflip (bool): Training: random horizontal flips (the same for every frame). Default: False.
            use_rot (bool): Training: random vertical flips and transpositions (rotations by 90 degrees), the same
                for every frame. Default: False.
            use_channel_permute (bool): Training: a random RGB permutation, the same for every frame of lq and gt.
                Default: False.
            random_reverse (bool): Training: reverse the clip's temporal order with probability 0.5. Default: False.
            check_sizes (bool): On construction, check that all frames of a sequence (lq and gt) have one size
                (from the images -- JPEGs are decoded, slow for the full set -- or the LMDBs' meta_info) and, in
                training, are at least ``gt_size``; otherwise each clip is checked when read. Default: False.
    """

    OPTION_KEYS = ('dataroot', 'lq_folder', 'gt_folder', 'partition', 'meta_info_file', 'num_frame',
                   'center_frame_only', 'io_backend', 'dataroot_lq', 'dataroot_gt', 'gt_size', 'use_hflip', 'use_rot',
                   'use_channel_permute', 'random_reverse', 'check_sizes')


@DATASET_REGISTRY.register()
class DVDTestDataset(_DVDLayout, _WholeSequences):
    """DVD test sequences: one sample per whole sequence, for BasicSR's ``VideoRecurrentModel`` validation.

    Samples: ``lq``, ``gt`` (T, 3, H, W) float RGB in [0, 1], T the sequence's frame count (or ``max_frames``);
    ``folder`` (the sequence); ``lq_path``/``gt_path`` (the sequence's frame folder; its name with lmdb). Frames are
    read when a sample is requested (nothing is cached). ``data_info['folder']`` lists each sequence once per frame
    (``VideoRecurrentModel`` sizes its metrics with it); ``data_info['lq_path']``/``['gt_path']`` are the frames.

    Like :class:`DVDDataset`, it reads any folder of ``<seq>/{<lq_folder>,<gt_folder>}/<frame>.<png|jpg>`` sequences
    (e.g. ``dataroot: datasets/GOPRO_Large/test``, ``lq_folder: blur``, ``gt_folder: sharp``, ``partition: all``).

    Args:
        opt (dict): Config for the dataset. Keys:
            dataroot (str): The folder of sequences, ``DeepVideoDeblurring_Dataset/quantitative_datasets`` (disk
                backend).
            lq_folder (str): Blurry frames' folder in each sequence. Default: 'input'.
            gt_folder (str): Sharp frames' folder in each sequence. Default: 'GT'.
            partition (str): 'test', 'train' or 'all', as in :class:`DVDDataset`. Default: 'test'.
            meta_info_file (str): The test sequences, one a line. Default: DVD's (``meta_info_DVD_test.txt``).
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``. Default: ``{type: disk}``.
            dataroot_lq (str): lmdb backend: the blurry frames' .lmdb (keys '<seq>/<frame>').
            dataroot_gt (str): lmdb backend: the sharp frames' .lmdb.
            max_frames (int): Use only the first ``max_frames`` frames of every sequence (cheap validation).
                Default: None (all).
    """

    OPTION_KEYS = ('dataroot', 'lq_folder', 'gt_folder', 'partition', 'meta_info_file', 'io_backend', 'dataroot_lq',
                   'dataroot_gt', 'max_frames')
    DEFAULT_PARTITION = 'test'
