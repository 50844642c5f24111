"""The frame-reading component every deblurzoo dataset uses: :class:`FrameReader` reads a sample's files (disk or
LMDB), decodes them, checks their sizes and -- in training -- crops and augments them alike; :class:`ClipIndex` and
:class:`SequenceIndex` turn validated sequences into clips of ``num_frame`` frames or whole sequences.

A dataset holds one ``FrameReader`` (``self.reader``) built from its options, and calls it openly from
``__getitem__``::

    sample = self.reader.read_pair(self.samples[index])              # GoPro, HIDE, RealBlur
    key, seq, frames = self.clip_index.pick(index, self.reader.is_train)  # DVD, REDS
    img_lqs, img_gts = self.reader.read_clip(frames)

Files are read as bytes (``safe_io``: any file name; LMDBs checked before the first read) and decoded by
``data_util.decode_image`` and ``flow_util.flow_from_bytes``; every error names the file, or ``<lmdb>:<key>``.
``scripts/check_dataset.py`` reads every file of a dataset through its reader (``data_util.check_files``: the
dataset's ``file_groups()`` and ``reader``).
"""
import random
from collections import OrderedDict
from os import path as osp

import numpy as np
import torch
from torch.utils import data
from torchvision.transforms.functional import normalize

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import get_root_logger, img2tensor
from .data_util import decode_image, format_notes, report
from .flow_util import flow_from_bytes
from .layout_scan import check_sizes, lmdb_keys, lmdb_sequences, listing, png_size, size_problems
from .safe_io import LmdbReader, read_bytes, shown

ROLES = ('lq', 'gt', 'flow')


def pair_groups(samples):
    """``file_groups`` of paired samples: (key, [(role, path)]) per sample, its blurry and sharp image (and flow)."""
    return [(sample['key'], [(role, sample[f'{role}_path']) for role in ROLES if f'{role}_path' in sample])
            for sample in samples]


def sequence_groups(sequences):
    """``file_groups`` of sequences ({seq: [{'lq_path', 'gt_path', 'frame'}]}): (seq, [(role, path)]), all frames of
    a sequence needing one size."""
    return [(seq, [(role, frame[f'{role}_path']) for frame in frames for role in ('lq', 'gt')])
            for seq, frames in sequences.items()]


def frames_tensor(imgs):
    """(T, 3, h, w) float RGB tensor of T (h, w, 3) BGR images."""
    return torch.stack(img2tensor(imgs, bgr2rgb=True, float32=True))


class FrameReader:
    """Reads, checks and (in training) crops and augments a dataset's images and flows.

    Args:
        opt (dict): The dataset's options; read here: ``io_backend`` (``{type: disk}`` or ``{type: lmdb}``, other
            keys go to ``lmdb.open``), ``phase``, ``gt_size`` (required in training), ``use_hflip``, ``use_rot``,
            ``use_channel_permute``, ``mean``, ``std``.
        cls_name (str): The dataset's class name, for messages.
        crop (bool): Crop and augment in training; False: whole frames whatever the phase. Default: True.
        backends (tuple[str]): The io_backend types the dataset supports. Default: ('disk', 'lmdb').
        backend_hint (str): What the error on another backend suggests. Default: 'use disk or lmdb'.

    Attributes:
        is_train (bool): Cropping and augmenting (phase 'train' and ``crop``).
        gt_size (int | None): The training crop; also the smallest image size accepted in training.
        backend (str): 'disk' or 'lmdb'; paths are LMDB keys with lmdb (see :meth:`use_lmdbs`).
    """

    def __init__(self, opt, cls_name, crop=True, backends=('disk', 'lmdb'), backend_hint='use disk or lmdb'):
        self.owner = f"{cls_name} '{opt.get('name', '')}'"
        io_options = dict(opt.get('io_backend') or {'type': 'disk'})  # a copy: never mutate opt
        self.backend = io_options.pop('type', 'disk')
        if self.backend not in backends:
            raise ValueError(f"io_backend type '{self.backend}' is not supported by {cls_name}; {backend_hint}")
        if self.backend == 'disk' and io_options:
            raise ValueError(f"{self.owner}: io_backend keys {', '.join(map(repr, io_options))} are not used by the "
                             'disk backend')
        self.lmdb_options = io_options
        self.is_train = crop and opt.get('phase', 'test') == 'train'
        self.gt_size = None
        if self.is_train:
            if opt.get('gt_size') is None:
                raise ValueError(f"{self.owner}: the option 'gt_size' (training crop size) is required when phase is "
                                 "'train'")
            self.gt_size = int(opt['gt_size'])
        self.hflip, self.rot = opt.get('use_hflip', False), opt.get('use_rot', False)
        self.permute = opt.get('use_channel_permute', False)
        self.mean, self.std = opt.get('mean'), opt.get('std')
        self.db_paths, self.shapes, self.lmdbs = {}, {}, {}

    # ---------------- sources

    def use_lmdbs(self, options, opt, roles=('lq', 'gt')):
        """lmdb backend: check and register the LMDBs of ``opt[options[role]]`` for ``roles``; returns their
        {role: (keys, {key: (h, w)})} from their meta_info.txt (``layout_scan.lmdb_keys``)."""
        listed = {}
        for role in roles:
            option = options[role]
            listed[role] = lmdb_keys(opt.get(option), option)
            self.db_paths[role] = opt[option]
            self.shapes[role] = listed[role][1]
            self.lmdbs[role] = LmdbReader(opt[option], **self.lmdb_options)
        return listed

    def read(self, path, role):
        """Bytes of ``path`` (an LMDB key with lmdb) of ``role``; errors name the file or key."""
        if self.backend == 'disk':
            return read_bytes(path)
        content = self.lmdbs[role].get(path)
        if content is None:  # lmdb: key absent
            raise KeyError(f"key '{shown(path)}' not found in the {role} lmdb {shown(self.db_paths[role])}")
        return content

    def name(self, path, role):
        """A file's name in messages: its path on disk, '<lmdb>:<key>' with lmdb."""
        return path if self.backend == 'disk' else f'{self.db_paths[role]}:{path}'

    def read_image(self, path, role):
        """(H, W, 3) float32 BGR image in [0, 1] (``data_util.decode_image``: errors name the file)."""
        return decode_image(self.read(path, role), self.name(path, role))

    def read_flow(self, path):
        """(H, W, 4) float32 flow."""
        return flow_from_bytes(self.read(path, 'flow'), self.name(path, 'flow'))

    def inspect(self, path, role):
        """Read and decode one file as training does: its name in messages, its (h, w) and notes on its format
        (``data_util.format_notes``). Raises what reading it in training raises (naming the file or key)."""
        name = self.name(path, role)
        if role == 'flow':
            return name, self.read_flow(path).shape[:2], []
        img, info = decode_image(self.read(path, role), name, with_info=True)
        return name, img.shape[:2], format_notes(info)

    # ---------------- sizes

    def size_problems(self, sizes):
        """``layout_scan.size_problems`` of ``sizes`` with the training crop as the smallest size."""
        return size_problems(sizes, self.gt_size)

    def check_read_sizes(self, sizes):
        """Raise a ValueError with the first of :meth:`size_problems` (one sample's or clip's images)."""
        messages = self.size_problems(sizes)
        if messages:
            raise ValueError(messages[0])

    def stored_size(self, path, role):
        """(h, w) of a file without decoding it: from its header on disk (``layout_scan.png_size``), from the
        LMDB's meta_info.txt with lmdb (None if not listed)."""
        if self.backend == 'disk':
            return png_size(path)
        return self.shapes[role].get(path)

    def check_stored_sizes(self, groups, problems=None):
        """Check the sizes of every group of ``groups`` (``file_groups``) on construction (:meth:`stored_size`);
        problems raised, or recorded in ``problems``."""
        check_sizes([[(self.name(path, role), self.stored_size(path, role)) for role, path in files]
                     for _, files in groups], self.gt_size, problems)

    # ---------------- samples

    def augment(self, img_lqs, img_gts, flows=(), name=''):
        """Training: one random ``gt_size`` crop for every image of ``img_lqs``, ``img_gts`` and ``flows`` (BasicSR's
        ``paired_random_crop``), one flip/rotation (``augment``; flow vectors follow) and one RGB permutation of the
        images; ``name`` names the sample in errors. Returns the three lists."""
        num_gt = len(img_gts)
        crops, img_lqs = paired_random_crop(list(img_gts) + list(flows), list(img_lqs), self.gt_size, 1, name)
        crops, img_lqs = (v if isinstance(v, list) else [v] for v in (crops, img_lqs))
        img_gts, flows = crops[:num_gt], crops[num_gt:]
        imgs = img_lqs + img_gts
        if flows and (self.hflip or self.rot):
            # BasicSR's augment transforms (h, w, 2) flows: each direction as a separate, contiguous flow
            halves = [np.ascontiguousarray(flow[..., k:k + 2]) for flow in flows for k in (0, 2)]
            imgs, halves = augment(imgs, self.hflip, self.rot, flows=halves)
            flows = [np.concatenate(halves[k:k + 2], axis=2) for k in range(0, len(halves), 2)]
        else:
            imgs = augment(imgs, self.hflip, self.rot)
        if self.permute:
            perm = random.sample(range(3), 3)
            imgs = [img[..., perm] for img in imgs]
        return imgs[:len(img_lqs)], imgs[len(img_lqs):], flows

    def read_pair(self, sample):
        """One paired sample: ``lq``, ``gt`` (3, H, W) float RGB in [0, 1] (cropped and augmented in training,
        normalised with ``mean``/``std``), ``lq_path``, ``gt_path``, ``key`` and, if the sample has a ``flow_path``,
        ``flow`` (4, H, W) float."""
        lq_path, gt_path = sample['lq_path'], sample['gt_path']
        img_lq = self.read_image(lq_path, 'lq')  # (h, w, 3) BGR
        img_gt = self.read_image(gt_path, 'gt')
        flows = [self.read_flow(sample['flow_path'])] if 'flow_path' in sample else []  # (h, w, 4)
        sizes = [(self.name(lq_path, 'lq'), img_lq.shape[:2]), (self.name(gt_path, 'gt'), img_gt.shape[:2])]
        sizes += [(self.name(sample['flow_path'], 'flow'), flow.shape[:2]) for flow in flows]
        self.check_read_sizes(sizes)
        if self.is_train:
            (img_lq, ), (img_gt, ), flows = self.augment([img_lq], [img_gt], flows, self.name(gt_path, 'gt'))
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)  # (3, h, w) RGB
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        out = {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path, 'key': sample['key']}
        if flows:
            out['flow'] = img2tensor(flows[0], bgr2rgb=False, float32=True)  # (4, h, w)
        return out

    def read_clip(self, frames):
        """(T, 3, h, w) float RGB tensors in [0, 1] of ``frames``' ([{'lq_path', 'gt_path'}]) blurry and sharp
        images, sizes checked; in training cropped and augmented alike (:meth:`augment`)."""
        img_lqs = [self.read_image(frame['lq_path'], 'lq') for frame in frames]
        img_gts = [self.read_image(frame['gt_path'], 'gt') for frame in frames]
        sizes = []
        for frame, img_lq, img_gt in zip(frames, img_lqs, img_gts):
            sizes += [(self.name(frame['lq_path'], 'lq'), img_lq.shape[:2]),
                      (self.name(frame['gt_path'], 'gt'), img_gt.shape[:2])]
        self.check_read_sizes(sizes)
        if self.is_train:
            center = frames[len(frames) // 2]
            img_lqs, img_gts, _ = self.augment(img_lqs, img_gts, name=self.name(center['gt_path'], 'gt'))
        return frames_tensor(img_lqs), frames_tensor(img_gts)


def disk_reader(opt, cls_name, layout):
    """The :class:`FrameReader` of a dataset that reads its folder ``dataroot`` from disk only (HIDE, RealBlur);
    errors name ``layout`` for another backend or a missing ``dataroot``."""
    reader = FrameReader(
        opt, cls_name, backends=('disk', ), backend_hint=f'it reads its folder with the disk backend ({layout})')
    if not opt.get('dataroot'):
        raise ValueError(f"{cls_name} needs the option 'dataroot' ({layout})")
    return reader


# ---------------------------------------------------------------- video sequences


def load_sequences(reader, opt, scan_disk, select, problems=None):
    """A video dataset's validated sequences, {seq: [{'lq_path', 'gt_path', 'frame'}]} (paths are LMDB keys with
    lmdb), and where they came from (for messages).

    Args:
        reader (FrameReader): The dataset's reader (its backend; the LMDBs are registered with it).
        opt (dict): The dataset's options (``dataroot_lq``, ``dataroot_gt`` with lmdb).
        scan_disk (callable): () -> (sequences, where): the dataset's folder layout.
        select (callable): (names, where) -> the sequences to use among the LMDBs' ``names``.
        problems (Problems | None): Record problems instead of raising the first. Default: None.
    """
    if reader.backend == 'disk':
        return scan_disk()
    listed = reader.use_lmdbs({'lq': 'dataroot_lq', 'gt': 'dataroot_gt'}, opt)
    frames = lmdb_sequences(listed['lq'][0], listed['gt'][0], opt['dataroot_lq'], opt['dataroot_gt'], problems)
    where = f"the dataroot_lq lmdb {shown(opt['dataroot_lq'])}"
    return OrderedDict((seq, [{
        'lq_path': f'{seq}/{frame}',
        'gt_path': f'{seq}/{frame}',
        'frame': frame
    } for frame in frames[seq]]) for seq in select(list(frames), where)), where


def log_sequences(owner, where, sequences, extra='', partition=None):
    """Log a video dataset's size: '<owner>: [partition 'p' of ]<where>: N sequences, M frames<extra>'."""
    num_frames = sum(len(frames) for frames in sequences.values())
    part = '' if partition is None else f"partition '{partition}' of "
    get_root_logger().info(f'{owner}: {part}{shown(where)}: {len(sequences)} sequences, {num_frames} frames{extra}')


class ClipIndex:
    """The clips of ``num_frame`` consecutive frames of every sequence, and how a clip becomes a sample.

    Reads the options ``num_frame`` (required, an int >= 1), ``center_frame_only`` (``gt`` is the centre frame; needs
    an odd ``num_frame``) and ``random_reverse`` (training: reverse a clip with probability 0.5).

    Args:
        opt (dict): The dataset's options.
        owner (str): The dataset in messages ("<class> '<name>'").
        single_frame_images (bool): ``num_frame: 1`` gives (3, h, w) images, not (1, 3, h, w) clips. Default: False.
    """

    def __init__(self, opt, owner, single_frame_images=False):
        num_frame = opt.get('num_frame')
        if num_frame is None or isinstance(num_frame, bool) or not isinstance(num_frame, int) or num_frame < 1:
            raise ValueError(f"{owner}: the option 'num_frame' (frames per clip, an int >= 1) is required; "
                             f'got {num_frame!r}')
        self.owner, self.num_frame = owner, num_frame
        self.center_frame_only = bool(opt.get('center_frame_only', False))
        if self.center_frame_only and num_frame % 2 == 0:
            raise ValueError(f'{owner}: center_frame_only needs an odd num_frame (a centre frame), got {num_frame}')
        self.random_reverse = bool(opt.get('random_reverse', False))
        self.single_frame_images = single_frame_images
        self.sequences, self.clips = OrderedDict(), []

    def index(self, sequences, where, selection_options, problems=None, partition=None):
        """Index the clips of ``sequences`` and log their number (:func:`log_sequences`); sequences shorter than
        ``num_frame`` are an error (with ``problems``: recorded and left out of ``sequences``). ``selection_options``
        names the options that leave sequences out."""
        num_frame = self.num_frame
        short = [(seq, len(frames)) for seq, frames in sequences.items() if len(frames) < num_frame]
        if short:
            report(
                problems,
                ValueError(f'{self.owner}: {len(short)} sequence(s) of {shown(where)} have fewer frames than '
                           f'num_frame {num_frame}: {listing(f"{seq} ({n} frames)" for seq, n in short)}; lower '
                           f'num_frame or leave them out ({selection_options})'),
                [
                    f'sequence {shown(seq)} of {shown(where)}: {n} frame(s), fewer than num_frame {num_frame}'
                    for seq, n in short
                ])
            for seq, _ in short:
                del sequences[seq]
        self.sequences = sequences
        self.clips = [(seq, start) for seq, frames in sequences.items() for start in range(len(frames) - num_frame + 1)]
        log_sequences(self.owner, where, sequences, f', {len(self.clips)} clips of {num_frame}', partition)

    def __len__(self):
        return len(self.clips)

    def pick(self, index, train):
        """Clip ``index``: its key ('<seq>/<first frame>'), sequence and frames (reversed with probability 0.5 with
        ``random_reverse`` in training)."""
        seq, start = self.clips[index]
        frames = self.sequences[seq][start:start + self.num_frame]
        key = f"{seq}/{frames[0]['frame']}"
        if train and self.random_reverse and random.random() < 0.5:
            frames = frames[::-1]
        return key, seq, frames

    def sample(self, key, seq, frames, img_lqs, img_gts):
        """The sample of a clip read as (T, 3, h, w) tensors: ``lq``, ``gt`` (the centre frame with
        ``center_frame_only``; images for ``num_frame: 1`` with ``single_frame_images``), ``key``, ``folder``,
        ``lq_path``/``gt_path`` (the centre frame's)."""
        center = frames[self.num_frame // 2]
        if self.center_frame_only:
            img_gts = img_gts[self.num_frame // 2]
        if self.single_frame_images and self.num_frame == 1:
            img_lqs, img_gts = img_lqs[0], (img_gts if self.center_frame_only else img_gts[0])
        return {
            'lq': img_lqs,
            'gt': img_gts,
            'key': key,
            'folder': seq,
            'lq_path': center['lq_path'],
            'gt_path': center['gt_path']
        }


class PairDataset(data.Dataset):
    """The Dataset protocol over ``self.samples``, (blurry, sharp) pairs that ``self.reader`` reads (GoPro, HIDE,
    RealBlur set both in ``__init__``)."""

    def file_groups(self):
        """Every file the dataset reads, as (key, [(role, path)]): the files of a sample need one size
        (:func:`pair_groups`); ``path`` is an LMDB key with lmdb."""
        return pair_groups(self.samples)

    def __getitem__(self, index):
        return self.reader.read_pair(self.samples[index])

    def __len__(self):
        return len(self.samples)


class WholeSequenceDataset(data.Dataset):
    """The Dataset protocol over ``self.whole`` (a :class:`SequenceIndex`, one sample per sequence) and
    ``self.sequences``, read by ``self.reader`` (the DVD and REDS test sets set them in ``__init__``)."""

    def file_groups(self):
        """Every file the dataset reads, as (sequence, [(role, path)]): all frames of a sequence need one size."""
        return sequence_groups(self.sequences)

    def __getitem__(self, index):
        return self.whole.sample(index, self.reader)

    def __len__(self):
        return len(self.whole)


class SequenceIndex:
    """Whole sequences, one sample each (BasicSR's ``VideoRecurrentModel`` validation), and their ``data_info``.

    Reads the option ``max_frames`` (use only the first ``max_frames`` frames of every sequence; None: all).
    """

    def __init__(self, opt, owner):
        max_frames = opt.get('max_frames')
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                       or max_frames < 1):
            raise ValueError(f'{owner}: max_frames must be an int >= 1 or null, got {max_frames!r}')
        self.owner, self.max_frames = owner, max_frames
        self.sequences, self.folders = OrderedDict(), []
        self.data_info = {'folder': [], 'lq_path': [], 'gt_path': []}

    def index(self, sequences, where, partition=None):
        """Index ``sequences`` (cut to ``max_frames``) and log their number (:func:`log_sequences`);
        ``data_info['folder']`` lists each sequence once per frame (``VideoRecurrentModel`` sizes its metrics with
        it), ``['lq_path']``/``['gt_path']`` the frames."""
        if self.max_frames is not None:
            for seq, frames in sequences.items():
                sequences[seq] = frames[:self.max_frames]
        self.sequences, self.folders = sequences, list(sequences)
        for seq, frames in sequences.items():
            for frame in frames:
                self.data_info['folder'].append(seq)
                self.data_info['lq_path'].append(frame['lq_path'])
                self.data_info['gt_path'].append(frame['gt_path'])
        extra = '' if self.max_frames is None else f' (at most {self.max_frames} a sequence)'
        log_sequences(self.owner, where, sequences, extra, partition)

    def __len__(self):
        return len(self.folders)

    def sample(self, index, reader):
        """Sequence ``index`` read by ``reader``: ``lq``, ``gt`` (T, 3, H, W), ``folder``, ``lq_path``/``gt_path``
        (the sequence's frame folders; its name with lmdb)."""
        seq = self.folders[index]
        frames = self.sequences[seq]
        img_lqs, img_gts = reader.read_clip(frames)
        if reader.backend == 'disk':
            lq_path, gt_path = osp.dirname(frames[0]['lq_path']), osp.dirname(frames[0]['gt_path'])
        else:
            lq_path = gt_path = seq
        return {'lq': img_lqs, 'gt': img_gts, 'folder': seq, 'lq_path': lq_path, 'gt_path': gt_path}
