"""GoPro (Nah et al., CVPR 2017) blurry/sharp pairs, optionally with the bi-directional flows of SVDN's position loss.

Layout (``GOPRO_Large``)::

    <dataroot>/<split>/<seq>/{blur,blur_gamma,sharp}/<frame>.png      e.g. train/GOPR0372_07_00/blur/000047.png
    <dataroot>/<split>/<seq>/flow/<frame>.png                          scripts/compute_flows.py (flow_util format)

:func:`scan_gopro` is the one implementation of that layout (validation included); ``scripts/make_lmdb.py`` packs it
into LMDBs keyed ``<seq>/<frame>``, which :class:`GoProDataset` reads as well.

Images are read by ``data_util.decode_image`` (8- and 16-bit, grayscale, RGB, RGBA; empty, truncated and undecodable
files are refused with their path). The scans and the datasets take ``problems`` (a ``data_util.Problems``): with it
they collect every problem instead of raising the first (``scripts/check_dataset.py``).
"""
import os
import random
import re
from os import path as osp

import cv2
import numpy as np
from torch.utils import data as data
from torchvision.transforms.functional import normalize

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from deblurzoo.data.flow_util import flow_from_bytes
from .data_util import check_option_keys, decode_image, format_notes, report

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
FLOW_EXTENSIONS = ('.png', '.npy')
LAYOUT = '<dataroot>/{train,test}/<seq>/{blur,blur_gamma,sharp}/<frame>.png (the GOPRO_Large layout)'
_SHOWN = 5  # how many missing names an error message lists


def _listing(names):
    """'a, b, c (+N more)' for error messages."""
    names = list(names)
    more = f' (+{len(names) - _SHOWN} more)' if len(names) > _SHOWN else ''
    return ', '.join(names[:_SHOWN]) + more


def _flow_hint(flow_root, split):
    return f'run scripts/compute_flows.py --root {flow_root} --splits {split}'


def _frames_in(folder, extensions):
    """{frame stem: file name} of the files with ``extensions`` in ``folder`` (None if the folder does not exist)."""
    if not osp.isdir(folder):
        return None
    frames = {}
    for name in os.listdir(folder):
        stem, ext = osp.splitext(name)
        if ext.lower() in extensions and osp.isfile(osp.join(folder, name)):
            frames[stem] = name
    return frames


def _natural_key(name):
    """Sort key ordering '2.jpg' before '10.jpg' (zero-padded names sort as strings do); ties ('1', '01') by name."""
    return [int(token) if token.isdigit() else token for token in re.split(r'(\d+)', name)], name


def _compare_frames(seq, lq_names, gt_names, lq_folder, gt_folder, where, problems=None, dirs=None):
    """The frame names in both ``lq_names`` and ``gt_names``.

    Unless both sets are equal and non-empty, raises a ValueError naming ``seq`` and the unpaired frames (``where``:
    the sequence's place) or, with ``problems``, records one message per unpaired frame (``dirs``: the (lq, gt)
    folders or '<lmdb>:<seq>' they are named in) and returns the paired ones.
    """
    lq_names, gt_names = set(lq_names), set(gt_names)
    if lq_names != gt_names:
        if len(lq_names) != len(gt_names):
            head = f'{len(lq_names)} {lq_folder} frames but {len(gt_names)} {gt_folder} frames'
        else:
            head = f'{lq_folder} and {gt_folder} frame names differ'
        missing = [(gt_folder, sorted(lq_names - gt_names, key=_natural_key)),
                   (lq_folder, sorted(gt_names - lq_names, key=_natural_key))]
        tail = '; '.join(f'missing in {folder}: {_listing(names)}' for folder, names in missing if names)
        lq_dir, gt_dir = dirs or (lq_folder, gt_folder)
        found_in = {gt_folder: lq_dir, lq_folder: gt_dir}
        where_missing = {gt_folder: gt_dir, lq_folder: lq_dir}
        report(problems, ValueError(f'sequence {seq}: {head} ({where}); {tail}'), [
            f'{osp.join(found_in[folder], name)}: unpaired frame of sequence {seq}: no {folder} frame {name} in '
            f'{where_missing[folder]}' for folder, names in missing for name in names
        ])
    elif not lq_names:
        report(problems, FileNotFoundError(f'sequence {seq} has no frames ({where})'))
    return lq_names & gt_names


def sequence_frames(root, seq, lq_folder, gt_folder, hint='', problems=None):
    """{frame stem: file name} of ``<root>/<seq>``'s frames, validated: both folders exist and hold the same, non-empty
    set of image names; errors name the sequence and the unpaired frames (``hint``: the expected layout).

    With ``problems`` (a ``data_util.Problems``) the problems are recorded instead and the paired frames returned
    (None if there are none).
    """
    listed = {}
    for folder in (lq_folder, gt_folder):
        listed[folder] = _frames_in(osp.join(root, seq, folder), IMG_EXTENSIONS)
        if listed[folder] is None:
            report(problems,
                   FileNotFoundError(f"sequence {seq} has no '{folder}' folder: {osp.join(root, seq, folder)} not "
                                     f"found{'; expected ' + hint if hint else ''}"))
            return None
    paired = _compare_frames(seq, listed[lq_folder].values(), listed[gt_folder].values(), lq_folder, gt_folder,
                             f'in {osp.join(root, seq)}', problems,
                             (osp.join(root, seq, lq_folder), osp.join(root, seq, gt_folder)))
    return {stem: name for stem, name in listed[lq_folder].items() if name in paired} or None


def split_key(key, source):
    """``'<seq>/<frame>'`` -> ``(seq, frame)``; ``source`` names where the key came from in the error."""
    seq, sep, frame = key.rpartition('/')
    if not sep or not seq or not frame:
        raise ValueError(f"{source}: malformed key '{key}', expected '<seq>/<frame>' such as 'GOPR0372_07_00/000047'")
    return seq, frame


def read_keys(meta_info_file, with_shapes=False):
    """Keys listed in a meta-info txt file: the first token of each non-empty line, image extension dropped.

    Reads both a plain key list (``GOPR0372_07_00/000047``) and BasicSR's LMDB ``meta_info.txt``
    (``GOPR0372_07_00/000047.png (720,1280,3) 1``). Lines starting with ``#`` are comments.

    Args:
        meta_info_file (str): Path of the txt file.
        with_shapes (bool): Also return ``{key: (h, w)}`` from the lines' ``(h,w,c)`` field (BasicSR's LMDB
            meta_info.txt). Default: False.

    Returns:
        list[str] | tuple[list[str], dict]: Keys in file order (and their shapes).
    """
    if not osp.isfile(meta_info_file):
        raise FileNotFoundError(f'meta info file not found: {meta_info_file}')
    keys, shapes = [], {}
    with open(meta_info_file) as f:
        for line in f:
            tokens = line.split()
            if not tokens or tokens[0].startswith('#'):
                continue
            key, ext = osp.splitext(tokens[0])
            if ext.lower() not in IMG_EXTENSIONS + FLOW_EXTENSIONS:
                key = tokens[0]
            keys.append(key)
            if with_shapes and len(tokens) > 1:
                shape = tokens[1].strip('()').split(',')
                shapes[key] = (int(shape[0]), int(shape[1]))
    if not keys:
        raise ValueError(f'meta info file {meta_info_file} lists no keys')
    return (keys, shapes) if with_shapes else keys


def scan_gopro(root,
               split,
               blur_folder='blur',
               sharp_folder='sharp',
               flow_folder=None,
               flow_root=None,
               keys=None,
               problems=None):
    """Scan and validate one split of a GoPro-layout folder.

    Every referenced sequence must have a ``blur_folder`` and a ``sharp_folder`` holding the same file names; with
    ``flow_folder``, every selected frame needs ``<flow_root>/<split>/<seq>/<flow_folder>/<frame>.png`` (or ``.npy``).
    Errors name the folder, sequence or files at fault.

    Args:
        root (str): The dataset root (``GOPRO_Large``).
        split (str): Split folder under ``root`` ('train' or 'test').
        blur_folder (str): Blurry frames' folder in each sequence ('blur' or 'blur_gamma'). Default: 'blur'.
        sharp_folder (str): Sharp frames' folder in each sequence. Default: 'sharp'.
        flow_folder (str | None): Flows' folder in each sequence; None: no flows. Default: None.
        flow_root (str | None): GoPro-layout root holding the flows; None: ``root``. Default: None.
        keys (list[str] | None): ``'<seq>/<frame>'`` keys to select, in this order; None: every pair, sorted.
            Only the sequences they reference are validated. Default: None.
        problems (Problems | None): Record every problem in this ``data_util.Problems`` and return the usable pairs
            (a frame without its flow keeps no ``flow_path``) instead of raising the first. Default: None.

    Returns:
        list[dict]: One dict per pair: ``key``, ``lq_path``, ``gt_path`` (and ``flow_path`` with ``flow_folder``).
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'GoPro dataroot not found: {root}; expected {LAYOUT}')
    split_dir = osp.join(root, split)
    if not osp.isdir(split_dir):
        found = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
        raise FileNotFoundError(f"GoPro split folder not found: {split_dir} (folders in {root}: {found or 'none'}); "
                                f'expected {LAYOUT}')
    seqs = sorted(d for d in os.listdir(split_dir) if osp.isdir(osp.join(split_dir, d)))
    if not seqs:
        raise FileNotFoundError(f'no sequence folders in {split_dir}; expected '
                                f'{split_dir}/<seq>/{{{blur_folder},{sharp_folder}}}/<frame>.png')
    if keys is not None:
        wanted = [split_key(k, 'meta_info_file') for k in keys]
        unknown = [(s, f) for s, f in wanted if s not in seqs]
        if unknown:
            report(problems,
                   ValueError(f'{len(unknown)} key(s) name sequences that are not in {split_dir}: '
                              f'{_listing(f"{s}/{f}" for s, f in unknown)}'),
                   [f'meta_info_file key {s}/{f}: no sequence folder {osp.join(split_dir, s)}' for s, f in unknown])
            wanted = [(s, f) for s, f in wanted if s in seqs]
        seqs = sorted({s for s, _ in wanted})

    frames = {}  # seq -> {frame stem: file name}, identical in blur and sharp
    for seq in seqs:
        frames[seq] = sequence_frames(split_dir, seq, blur_folder, sharp_folder, problems=problems) or {}

    if keys is None:
        wanted = [(seq, frame) for seq in seqs for frame in sorted(frames[seq])]
    else:
        missing = [f'{s}/{f}' for s, f in wanted if f not in frames[s]]
        if missing:
            report(problems,
                   ValueError(f'{len(missing)} key(s) not found in {split_dir} (no {blur_folder}/{sharp_folder} '
                              f'frame of that name): {_listing(missing)}'),
                   [f'meta_info_file key {k}: no {blur_folder}/{sharp_folder} frame of that name in {split_dir}'
                    for k in missing])
            wanted = [(s, f) for s, f in wanted if f in frames[s]]

    samples = [{
        'key': f'{seq}/{frame}',
        'lq_path': osp.join(split_dir, seq, blur_folder, frames[seq][frame]),
        'gt_path': osp.join(split_dir, seq, sharp_folder, frames[seq][frame])
    } for seq, frame in wanted]

    if flow_folder is not None:
        flow_root = root if flow_root is None else flow_root
        flows = {seq: _frames_in(osp.join(flow_root, split, seq, flow_folder), FLOW_EXTENSIONS) or {} for seq in seqs}
        missing = []  # (seq, expected flow file)
        for sample, (seq, frame) in zip(samples, wanted):
            if frame in flows[seq]:
                sample['flow_path'] = osp.join(flow_root, split, seq, flow_folder, flows[seq][frame])
            else:
                missing.append((seq, osp.join(flow_root, split, seq, flow_folder, f'{frame}.png')))
        if missing:
            report(problems,
                   FileNotFoundError(f'missing optical flows for {len(missing)} of {len(samples)} frames, first in '
                                     f'sequence {missing[0][0]}: {_listing(p for _, p in missing)}; '
                                     f'{_flow_hint(flow_root, split)}'),
                   [f'{path}: no flow file (.png or .npy); {_flow_hint(flow_root, split)}' for _, path in missing])
    return samples


def png_size(path):
    """(h, w) of an image, read from a PNG's IHDR chunk (its first 24 bytes); other formats are decoded."""
    with open(path, 'rb') as f:
        head = f.read(24)
    if head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR':
        return int.from_bytes(head[20:24], 'big'), int.from_bytes(head[16:20], 'big')
    if path.endswith('.npy'):
        return tuple(np.load(path, mmap_mode='r').shape[:2])
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'cannot read image {path}')
    return img.shape[:2]


def _lmdb_keys(path, option):
    """Keys and shapes from an LMDB folder's meta_info.txt; ``option`` names the YAML key in errors."""
    if not path:
        raise ValueError(f"io_backend type 'lmdb' needs the option '{option}' (an .lmdb folder from "
                         'scripts/make_lmdb.py)')
    if not osp.exists(path):
        raise FileNotFoundError(f'{option}: lmdb not found: {path} (make it with scripts/make_lmdb.py)')
    if not osp.isfile(osp.join(path, 'data.mdb')):
        raise ValueError(f'{option}: {path} is not an lmdb folder (no data.mdb in it; make one with '
                         'scripts/make_lmdb.py)')
    if not osp.isfile(osp.join(path, 'meta_info.txt')):
        raise FileNotFoundError(f'{option}: {path} has no meta_info.txt listing its keys (make the lmdb with '
                                'scripts/make_lmdb.py)')
    return read_keys(osp.join(path, 'meta_info.txt'), with_shapes=True)


@DATASET_REGISTRY.register()
class GoProDataset(data.Dataset):
    """GoPro blurry/sharp pairs (and optionally flows) from a GOPRO_Large folder or from LMDBs.

    Training (``phase: train``) returns random ``gt_size`` crops, taken at the same location in the blurry frame,
    the sharp frame and the flow, then flipped/rotated together (flow vectors follow: BasicSR's ``augment`` with
    ``flows=``) and optionally RGB-permuted (the same permutation for both images; SVDN's augmentation). Otherwise it
    returns full frames. Samples: ``lq``, ``gt`` (3, H, W) float RGB in [0, 1] (normalised with ``mean``/``std``),
    ``lq_path``, ``gt_path`` (the LMDB key with lmdb), ``key`` ('<seq>/<frame>'; unique, unlike the file name) and,
    with ``use_flow``, ``flow`` (4, H, W) float: ``(u_prev, v_prev, u_next, v_next)`` in pixels.

    The folder (or the LMDBs' key lists) is validated on construction; errors name the missing or mismatched paths.

    Args:
        opt (dict): Config for the dataset. Keys:
            dataroot (str): The GOPRO_Large folder (disk backend).
            split (str): Split folder, 'train' or 'test'. Default: 'train' if ``phase`` is 'train' else 'test'.
            phase (str): Set by BasicSR from the datasets section ('train', 'val', 'test'). Default: 'test'.
            blur_folder (str): 'blur' or 'blur_gamma'. Default: 'blur'.
            sharp_folder (str): Default: 'sharp'.
            meta_info_file (str): A txt file of '<seq>/<frame>' keys, one per line, that selects (and orders) the
                pairs, e.g. a custom split. Default: None (every pair).
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}`` (other keys go to BasicSR's ``FileClient``).
                Default: ``{type: disk}``.
            dataroot_lq (str): lmdb backend: the blurry frames' .lmdb (scripts/make_lmdb.py); keys come from its
                meta_info.txt.
            dataroot_gt (str): lmdb backend: the sharp frames' .lmdb.
            use_flow (bool): Also return 'flow'. Default: False.
            flow_folder (str): disk backend: flows' folder in each sequence. Default: 'flow'.
            dataroot_flow (str): disk: a GoPro-layout root holding ``<split>/<seq>/<flow_folder>/<frame>.png``
                (default: ``dataroot``); lmdb: the flows' .lmdb (required with ``use_flow``). Default: None.
            gt_size (int): Training crop size (required in training).
            use_hflip (bool): Training: random horizontal flips. Default: False.
            use_rot (bool): Training: random vertical flips and transpositions (rotations by 90 degrees).
                Default: False.
            use_channel_permute (bool): Training: random RGB permutation, the same for lq and gt. Default: False.
            mean (list[float]): Normalisation mean, as in BasicSR's PairedImageDataset. Default: None.
            std (list[float]): Normalisation std. Default: None.
            check_sizes (bool): On construction, compare every pair's image sizes (from PNG headers or LMDB
                meta_info) and check them against ``gt_size`` in training; otherwise each sample is checked when
                read. Default: False.
        problems (Problems | None): Collect every problem of the folder (or LMDBs) in this ``data_util.Problems``
            and keep the usable samples, instead of raising the first (``scripts/check_dataset.py``; such a dataset
            is for checking, not training). Default: None.
    """

    OPTION_KEYS = ('dataroot', 'split', 'blur_folder', 'sharp_folder', 'meta_info_file', 'io_backend', 'dataroot_lq',
                   'dataroot_gt', 'use_flow', 'flow_folder', 'dataroot_flow', 'gt_size', 'use_hflip', 'use_rot',
                   'use_channel_permute', 'mean', 'std', 'check_sizes')

    def __init__(self, opt, problems=None):
        super().__init__()
        check_option_keys(opt, self.OPTION_KEYS, 'GoProDataset')
        self.opt = opt
        self.problems = problems
        self.phase = opt.get('phase', 'test')
        self.is_train = self.phase == 'train'
        self.split = opt.get('split') or ('train' if self.is_train else 'test')
        self.use_flow = bool(opt.get('use_flow', False))
        self.mean, self.std = opt.get('mean'), opt.get('std')
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})  # a copy: never mutate opt
        self.backend = self.io_backend_opt.pop('type', 'disk')
        self.file_client = None
        if self.is_train:
            if opt.get('gt_size') is None:
                raise ValueError(f"GoProDataset '{opt.get('name', '')}': the option 'gt_size' (training crop size) "
                                 "is required when phase is 'train'")
            self.gt_size = int(opt['gt_size'])
        keys = read_keys(opt['meta_info_file']) if opt.get('meta_info_file') else None

        if self.backend == 'disk':
            if not opt.get('dataroot'):
                raise ValueError(f"GoProDataset needs the option 'dataroot' (the GOPRO_Large folder: {LAYOUT})")
            self.samples = scan_gopro(
                opt['dataroot'],
                self.split,
                blur_folder=opt.get('blur_folder', 'blur'),
                sharp_folder=opt.get('sharp_folder', 'sharp'),
                flow_folder=opt.get('flow_folder', 'flow') if self.use_flow else None,
                flow_root=opt.get('dataroot_flow'),
                keys=keys,
                problems=problems)
            if opt.get('check_sizes', False):
                self._check_sizes(self.samples, lambda role, s: (s[f'{role}_path'], png_size(s[f'{role}_path'])))
        elif self.backend == 'lmdb':
            self.samples = self._lmdb_samples(keys)
        else:
            raise ValueError(f"io_backend type '{self.backend}' is not supported by GoProDataset; use disk or lmdb")

    def _lmdb_samples(self, keys):
        """Samples from the LMDBs' meta_info.txt; ``keys`` (from meta_info_file) selects among them."""
        opt = self.opt
        options = {'lq': 'dataroot_lq', 'gt': 'dataroot_gt'}
        if self.use_flow:
            options['flow'] = 'dataroot_flow'
        listed = {role: _lmdb_keys(opt.get(option), option) for role, option in options.items()}  # (keys, shapes)
        self.db_paths = {role: opt[option] for role, option in options.items()}
        self.io_backend_opt['db_paths'] = list(self.db_paths.values())
        self.io_backend_opt['client_keys'] = list(self.db_paths)
        if keys is None:
            keys = sorted(listed['lq'][0])
        for role, option in options.items():
            present = set(listed[role][0])
            missing = [k for k in keys if k not in present]
            if missing:
                source = opt.get('meta_info_file') or f"the dataroot_lq lmdb {opt['dataroot_lq']}"
                hint = '; compute the flows (scripts/compute_flows.py), then rebuild the lmdb' if role == 'flow' else ''
                report(self.problems,
                       ValueError(f'{len(missing)} key(s) of {source} are not in the {option} lmdb {opt[option]}: '
                                  f'{_listing(missing)}{hint}'),
                       [f'{opt[option]}:{k}: key of {source} not in the {option} lmdb (its meta_info.txt){hint}'
                        for k in missing])
                keys = [k for k in keys if k in present]
        samples = [{'key': k, 'lq_path': k, 'gt_path': k} for k in keys]
        if self.use_flow:
            for sample in samples:
                sample['flow_path'] = sample['key']
        if opt.get('check_sizes', False):

            def size_of(role, sample):  # from the (h,w,c) of the lmdb's meta_info.txt
                return f"{self.db_paths[role]}:{sample['key']}", listed[role][1].get(sample['key'])

            self._check_sizes(samples, size_of)
        return samples

    def _check_sizes(self, samples, size_of):
        """Check all ``samples``' sizes on construction; ``size_of(role, sample)`` -> (name, (h, w) or None)."""
        for sample in samples:
            roles = [role for role in ('lq', 'gt', 'flow') if f'{role}_path' in sample]
            messages = self.size_problems([size_of(role, sample) for role in roles])
            if messages:
                report(self.problems, ValueError(messages[0]), messages)

    def size_problems(self, sizes):
        """Messages on ``sizes``, [(name, (h, w) or None: unknown)] of images that must have one size, lq first: one
        per image whose size differs from the first one's, and in training one if that is smaller than gt_size."""
        sizes = [(name, tuple(size)) for name, size in sizes if size is not None]
        if not sizes:
            return []
        (lq_name, lq_size), *others = sizes
        messages = [
            f'size mismatch: {lq_name} is {lq_size[0]}x{lq_size[1]} (h x w) but {name} is {size[0]}x{size[1]}'
            for name, size in others if size != lq_size
        ]
        if self.is_train and min(lq_size) < self.gt_size:
            messages.append(f'{lq_name} is {lq_size[0]}x{lq_size[1]} (h x w), smaller than gt_size {self.gt_size}; '
                            'remove it (meta_info_file) or lower gt_size')
        return messages

    def _check_pair(self, sizes):
        """Raise a ValueError with the first of :meth:`size_problems` (one sample's or clip's images)."""
        messages = self.size_problems(sizes)
        if messages:
            raise ValueError(messages[0])

    def _read(self, path, role):
        """Bytes of ``path`` (an LMDB key with lmdb) from the ``role`` client; errors name the file or key."""
        content = self.file_client.get(path, role)
        if content is None:  # lmdb: key absent
            raise KeyError(f"key '{path}' not found in the {role} lmdb {self.db_paths[role]}")
        return content

    def _name(self, path, role):
        """A file's name in messages: its path on disk, '<lmdb>:<key>' with lmdb."""
        return path if self.backend == 'disk' else f'{self.db_paths[role]}:{path}'

    def _open(self):
        """Create the file client on first use: in the worker process (LMDB environments do not pickle)."""
        if self.file_client is None:
            self.file_client = FileClient(self.backend, **self.io_backend_opt)

    def _read_image(self, path, role):
        """(H, W, 3) float32 BGR image in [0, 1] (``data_util.decode_image``: errors name the file)."""
        return decode_image(self._read(path, role), self._name(path, role))

    def _read_flow(self, path):
        """(H, W, 4) float32 flow."""
        return flow_from_bytes(self._read(path, 'flow'), self._name(path, 'flow'))

    def file_groups(self):
        """Every file the dataset reads, as (group, [(role, path)]) with the files of a group needing one size: a
        sample's blurry and sharp image (and flow). ``path`` is an LMDB key with lmdb (see :meth:`inspect_file`)."""
        roles = ('lq', 'gt', 'flow')
        return [(sample['key'], [(role, sample[f'{role}_path']) for role in roles if f'{role}_path' in sample])
                for sample in self.samples]

    def inspect_file(self, path, role):
        """Read and decode one file as training does: its name in messages, its (h, w) and notes on its format
        (``data_util.format_notes``). Raises what reading it in training raises (naming the file or key)."""
        self._open()
        name = self._name(path, role)
        if role == 'flow':
            return name, self._read_flow(path).shape[:2], []
        img, info = decode_image(self._read(path, role), name, with_info=True)
        return name, img.shape[:2], format_notes(info)

    def __getitem__(self, index):
        self._open()
        sample = self.samples[index]
        lq_path, gt_path = sample['lq_path'], sample['gt_path']
        img_lq = self._read_image(lq_path, 'lq')  # (h, w, 3) BGR
        img_gt = self._read_image(gt_path, 'gt')
        flow = self._read_flow(sample['flow_path']) if self.use_flow else None  # (h, w, 4)

        sizes = [(self._name(lq_path, 'lq'), img_lq.shape[:2]), (self._name(gt_path, 'gt'), img_gt.shape[:2])]
        if flow is not None:
            sizes.append((self._name(sample['flow_path'], 'flow'), flow.shape[:2]))
        self._check_pair(sizes)

        if self.is_train:
            # the same crop in all: gts = [sharp(, flow)], lqs = [blur]
            gts, img_lq = paired_random_crop([img_gt] if flow is None else [img_gt, flow], img_lq, self.gt_size, 1,
                                             gt_path)
            img_gt, flow = (gts, None) if flow is None else gts
            hflip, rot = self.opt.get('use_hflip', False), self.opt.get('use_rot', False)
            if flow is None:
                img_gt, img_lq = augment([img_gt, img_lq], hflip, rot)
            elif hflip or rot:
                # BasicSR's augment transforms (h, w, 2) flows: pass the two directions as separate, contiguous flows
                flows = [np.ascontiguousarray(flow[..., :2]), np.ascontiguousarray(flow[..., 2:])]
                (img_gt, img_lq), flows = augment([img_gt, img_lq], hflip, rot, flows=flows)
                flow = np.concatenate(flows, axis=2)  # (gt_size, gt_size, 4)
            if self.opt.get('use_channel_permute', False):
                perm = random.sample(range(3), 3)
                img_gt, img_lq = img_gt[..., perm], img_lq[..., perm]

        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)  # (3, h, w) RGB
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        out = {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path, 'key': sample['key']}
        if flow is not None:
            out['flow'] = img2tensor(flow, bgr2rgb=False, float32=True)  # (4, h, w)
        return out

    def __len__(self):
        return len(self.samples)


class DiskPairsDataset(GoProDataset):
    """Base of paired sets read from disk by their own layout scan (HIDE, RealBlur): GoProDataset's reading, size
    checks, cropping and augmentation over the samples :meth:`scan` returns (dicts with ``lq_path``, ``gt_path``,
    ``key``). Subclasses set ``OPTION_KEYS``, ``LAYOUT`` (for error messages) and implement :meth:`scan`."""

    LAYOUT = ''

    def __init__(self, opt, problems=None):
        data.Dataset.__init__(self)  # GoProDataset's __init__ scans the GoPro layout: scan() replaces it
        name = type(self).__name__
        check_option_keys(opt, self.OPTION_KEYS, name)
        self.opt = opt
        self.problems = problems
        self.phase = opt.get('phase', 'test')
        self.is_train = self.phase == 'train'
        self.split = opt.get('split') or ('train' if self.is_train else 'test')
        self.use_flow = False
        self.mean, self.std = opt.get('mean'), opt.get('std')
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})  # a copy: never mutate opt
        self.backend = self.io_backend_opt.pop('type', 'disk')
        self.file_client = None
        if self.backend != 'disk':
            raise ValueError(f"io_backend type '{self.backend}' is not supported by {name}; it reads its folder "
                             f'with the disk backend ({self.LAYOUT})')
        if self.is_train:
            if opt.get('gt_size') is None:
                raise ValueError(f"{name} '{opt.get('name', '')}': the option 'gt_size' (training crop size) "
                                 "is required when phase is 'train'")
            self.gt_size = int(opt['gt_size'])
        if not opt.get('dataroot'):
            raise ValueError(f"{name} needs the option 'dataroot' ({self.LAYOUT})")
        self.samples = self.scan(opt)
        if opt.get('check_sizes', False):
            self._check_sizes(self.samples, lambda role, s: (s[f'{role}_path'], png_size(s[f'{role}_path'])))

    def scan(self, opt):
        """The validated list of samples of ``opt``'s folder and split (collecting problems in ``self.problems``
        if it is set)."""
        raise NotImplementedError
