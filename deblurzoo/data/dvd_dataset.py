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
from collections import OrderedDict
from os import path as osp

from torch.utils import data as data

from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from .data_util import check_option_keys, report
from .frame_reader import (ClipIndex, FrameReader, SequenceIndex, WholeSequenceDataset, load_sequences,
                           sequence_groups)
from .layout_scan import list_sequences, listing, natural_key, pick_sequences, read_keys, sequence_frames
from .safe_io import shown

LAYOUT = '<dataroot>/<seq>/{input,GT}/<frame>.jpg (the DeepVideoDeblurring_Dataset/quantitative_datasets layout)'
DVD_TEST_META_INFO = osp.join(osp.dirname(osp.abspath(__file__)), 'meta_info', 'meta_info_DVD_test.txt')
PARTITIONS = ('train', 'test', 'all')
SELECTION_OPTIONS = 'partition, meta_info_file'  # the options that leave sequences out, named in errors


def _layout(lq_folder, gt_folder):
    if (lq_folder, gt_folder) == ('input', 'GT'):
        return LAYOUT
    return f'<dataroot>/<seq>/{{{lq_folder},{gt_folder}}}/<frame>.<png|jpg>'


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
    layout = _layout(lq_folder, gt_folder)
    sequences = pick_sequences(list_sequences(root, layout), sequences, root, problems)
    frames = OrderedDict()
    for seq in sequences:
        names = sequence_frames(root, seq, lq_folder, gt_folder, layout, problems)
        if names:
            frames[seq] = sorted(names.values(), key=natural_key)
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
            report(
                problems,
                ValueError(f'{len(missing)} test sequence(s) of {shown(meta_info_file)} are not in {shown(where)}: '
                           f'{listing(missing)} (it has {len(names)}: {listing(names)})'),
                [f'{shown(meta_info_file)}: test sequence {shown(s)} is not in {shown(where)}' for s in missing])
        return sorted(set(listed) & available)
    absent = [s for s in listed if s not in available]
    if absent:
        get_root_logger().warning(
            f'{len(absent)} of the {len(listed)} test sequences of {shown(meta_info_file)} are '
            f"not in {shown(where)} (it is partition 'train': every sequence not listed): {listing(absent)}")
    test_set = set(listed)
    selected = [s for s in names if s not in test_set]
    if not selected:
        raise ValueError(f"partition 'train' of {shown(where)} is empty: all its {len(names)} sequences are test "
                         f"sequences of {shown(meta_info_file)}; use partition 'all' or 'test'")
    return selected


def scan_partition(root, partition='all', meta_info_file=None, lq_folder='input', gt_folder='GT', problems=None):
    """:func:`select_sequences` of ``root``'s sequence folders, then :func:`scan_video_sequences` of them."""
    selected = select_sequences(
        list_sequences(root, _layout(lq_folder, gt_folder)), partition, meta_info_file, root, problems)
    return scan_video_sequences(root, lq_folder, gt_folder, sequences=selected, problems=problems)


def load_dvd(opt, reader, cls_name, partition, problems=None):
    """The validated sequences of a DVD dataset's ``partition`` (``frame_reader.load_sequences``): from the folder
    ``dataroot`` (:func:`scan_partition`) or the LMDBs' keys (:func:`select_sequences`); returns (sequences,
    where)."""
    lq_folder, gt_folder = opt.get('lq_folder', 'input'), opt.get('gt_folder', 'GT')
    meta_info_file = opt.get('meta_info_file')

    def scan_disk():
        root = opt.get('dataroot')
        if not root:
            raise ValueError(f"{cls_name} needs the option 'dataroot' (the folder of sequences: "
                             f'{_layout(lq_folder, gt_folder)})')
        frames = scan_partition(root, partition, meta_info_file, lq_folder, gt_folder, problems)
        return OrderedDict((seq, [{
            'lq_path': osp.join(root, seq, lq_folder, name),
            'gt_path': osp.join(root, seq, gt_folder, name),
            'frame': osp.splitext(name)[0]
        } for name in names]) for seq, names in frames.items()), root

    def select(names, where):
        return select_sequences(names, partition, meta_info_file, where, problems)

    return load_sequences(reader, opt, scan_disk, select, problems)


@DATASET_REGISTRY.register()
class DVDDataset(data.Dataset):
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
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}`` (other keys go to ``lmdb.open``).
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

    def __init__(self, opt, problems=None):
        super().__init__()
        check_option_keys(opt, self.OPTION_KEYS, 'DVDDataset')
        self.opt = opt
        owner = f"DVDDataset '{opt.get('name', '')}'"
        self.clip_index = ClipIndex(opt, owner)
        self.reader = FrameReader(opt, 'DVDDataset')
        self.partition = opt.get('partition') or ('train' if self.reader.is_train else 'test')
        sequences, where = load_dvd(opt, self.reader, 'DVDDataset', self.partition, problems)
        if opt.get('check_sizes', False):  # every frame of a sequence: one size (and >= gt_size in training)
            self.reader.check_stored_sizes(sequence_groups(sequences), problems)
        self.clip_index.index(sequences, where, SELECTION_OPTIONS, problems, self.partition)
        self.sequences, self.clips = self.clip_index.sequences, self.clip_index.clips

    def file_groups(self):
        """Every file the dataset reads, as (sequence, [(role, path)]): all frames of a sequence need one size."""
        return sequence_groups(self.sequences)

    def __getitem__(self, index):
        key, seq, frames = self.clip_index.pick(index, self.reader.is_train)
        img_lqs, img_gts = self.reader.read_clip(frames)  # (T, 3, h, w) RGB, cropped and augmented in training
        return self.clip_index.sample(key, seq, frames, img_lqs, img_gts)

    def __len__(self):
        return len(self.clips)


@DATASET_REGISTRY.register()
class DVDTestDataset(WholeSequenceDataset):
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

    def __init__(self, opt, problems=None):
        super().__init__()
        check_option_keys(opt, self.OPTION_KEYS, 'DVDTestDataset')
        self.opt = opt
        owner = f"DVDTestDataset '{opt.get('name', '')}'"
        self.whole = SequenceIndex(opt, owner)
        self.reader = FrameReader(opt, 'DVDTestDataset', crop=False)  # whole frames, whatever the phase
        self.partition = opt.get('partition') or 'test'
        sequences, where = load_dvd(opt, self.reader, 'DVDTestDataset', self.partition, problems)
        self.whole.index(sequences, where, self.partition)
        self.sequences, self.folders, self.data_info = self.whole.sequences, self.whole.folders, self.whole.data_info

