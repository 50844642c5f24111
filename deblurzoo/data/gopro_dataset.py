"""GoPro (Nah et al., CVPR 2017) blurry/sharp pairs, optionally with the bi-directional flows of SVDN's position loss.

Layout (``GOPRO_Large``)::

    <dataroot>/<split>/<seq>/{blur,blur_gamma,sharp}/<frame>.png      e.g. train/GOPR0372_07_00/blur/000047.png
    <dataroot>/<split>/<seq>/flow/<frame>.png                          scripts/compute_flows.py (flow_util format)

:func:`scan_gopro` is the one implementation of that layout (validation included); ``scripts/make_lmdb.py`` packs it
into LMDBs keyed ``<seq>/<frame>``, which :class:`GoProDataset` reads as well.

The folder is scanned with ``layout_scan`` and files are read by ``frame_reader.FrameReader`` (the components every
deblurzoo dataset uses): images decoded by ``data_util.decode_image`` (8- and 16-bit, grayscale, RGB, RGBA; empty,
truncated, oversized and undecodable files are refused with their path). The scans and the datasets take
``problems`` (a ``data_util.Problems``): with it they collect every problem instead of raising the first
(``scripts/check_dataset.py``).
"""
import os
from os import path as osp

from basicsr.utils.registry import DATASET_REGISTRY
from .data_util import check_option_keys, report
from .frame_reader import FrameReader, PairDataset
from .layout_scan import FLOW_EXTENSIONS, frames_in, listing, read_keys, sequence_frames, split_key
from .safe_io import shown

LAYOUT = '<dataroot>/{train,test}/<seq>/{blur,blur_gamma,sharp}/<frame>.png (the GOPRO_Large layout)'


def _flow_hint(flow_root, split):
    return f'run scripts/compute_flows.py --root {shown(flow_root)} --splits {split}'


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
        raise FileNotFoundError(f'GoPro dataroot not found: {shown(root)}; expected {LAYOUT}')
    split_dir = osp.join(root, split)
    if not osp.isdir(split_dir):
        found = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
        raise FileNotFoundError(f'GoPro split folder not found: {shown(split_dir)} (folders in {shown(root)}: '
                                f"{[shown(d) for d in found] or 'none'}); expected {LAYOUT}")
    seqs = sorted(d for d in os.listdir(split_dir) if osp.isdir(osp.join(split_dir, d)))
    if not seqs:
        raise FileNotFoundError(f'no sequence folders in {shown(split_dir)}; expected '
                                f'{shown(split_dir)}/<seq>/{{{blur_folder},{sharp_folder}}}/<frame>.png')
    if keys is not None:
        wanted = [split_key(k, 'meta_info_file') for k in keys]
        unknown = [(s, f) for s, f in wanted if s not in seqs]
        if unknown:
            report(
                problems,
                ValueError(f'{len(unknown)} key(s) name sequences that are not in {shown(split_dir)}: '
                           f'{listing(f"{s}/{f}" for s, f in unknown)}'),
                [
                    f'meta_info_file key {shown(s)}/{shown(f)}: no sequence folder {shown(osp.join(split_dir, s))}'
                    for s, f in unknown
                ])
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
            report(
                problems,
                ValueError(f'{len(missing)} key(s) not found in {shown(split_dir)} (no {blur_folder}/{sharp_folder} '
                           f'frame of that name): {listing(missing)}'), [
                               f'meta_info_file key {shown(k)}: no {blur_folder}/{sharp_folder} frame of that name in '
                               f'{shown(split_dir)}' for k in missing
                           ])
            wanted = [(s, f) for s, f in wanted if f in frames[s]]

    samples = [{
        'key': f'{seq}/{frame}',
        'lq_path': osp.join(split_dir, seq, blur_folder, frames[seq][frame]),
        'gt_path': osp.join(split_dir, seq, sharp_folder, frames[seq][frame])
    } for seq, frame in wanted]

    if flow_folder is not None:
        flow_root = root if flow_root is None else flow_root
        flows = {seq: frames_in(osp.join(flow_root, split, seq, flow_folder), FLOW_EXTENSIONS) or {} for seq in seqs}
        missing = []  # (seq, expected flow file)
        for sample, (seq, frame) in zip(samples, wanted):
            if frame in flows[seq]:
                sample['flow_path'] = osp.join(flow_root, split, seq, flow_folder, flows[seq][frame])
            else:
                missing.append((seq, osp.join(flow_root, split, seq, flow_folder, f'{frame}.png')))
        if missing:
            report(
                problems,
                FileNotFoundError(f'missing optical flows for {len(missing)} of {len(samples)} frames, first in '
                                  f'sequence {shown(missing[0][0])}: {listing(p for _, p in missing)}; '
                                  f'{_flow_hint(flow_root, split)}'),
                [f'{shown(path)}: no flow file (.png or .npy); {_flow_hint(flow_root, split)}' for _, path in missing])
    return samples


@DATASET_REGISTRY.register()
class GoProDataset(PairDataset):
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
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}`` (other keys go to ``lmdb.open``).
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
        self.reader = FrameReader(opt, 'GoProDataset')
        self.use_flow = bool(opt.get('use_flow', False))
        self.split = opt.get('split') or ('train' if self.reader.is_train else 'test')
        keys = read_keys(opt['meta_info_file']) if opt.get('meta_info_file') else None
        if self.reader.backend == 'disk':
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
        else:
            self.samples = self._lmdb_samples(keys, problems)
        if opt.get('check_sizes', False):
            self.reader.check_stored_sizes(self.file_groups(), problems)

    def _lmdb_samples(self, keys, problems):
        """Samples from the LMDBs' meta_info.txt; ``keys`` (from meta_info_file) selects among them."""
        opt = self.opt
        options = {'lq': 'dataroot_lq', 'gt': 'dataroot_gt', 'flow': 'dataroot_flow'}
        roles = ('lq', 'gt', 'flow') if self.use_flow else ('lq', 'gt')
        listed = self.reader.use_lmdbs(options, opt, roles)  # {role: (keys, shapes)}
        if keys is None:
            keys = sorted(listed['lq'][0])
        for role in roles:
            option = options[role]
            present = set(listed[role][0])
            missing = [k for k in keys if k not in present]
            if missing:
                source = shown(opt.get('meta_info_file') or f"the dataroot_lq lmdb {opt['dataroot_lq']}")
                hint = '; compute the flows (scripts/compute_flows.py), then rebuild the lmdb' if role == 'flow' else ''
                report(
                    problems,
                    ValueError(f'{len(missing)} key(s) of {source} are not in the {option} lmdb '
                               f'{shown(opt[option])}: {listing(missing)}{hint}'), [
                                   f'{shown(opt[option])}:{shown(k)}: key of {source} not in the {option} lmdb (its '
                                   f'meta_info.txt){hint}' for k in missing
                               ])
                keys = [k for k in keys if k in present]
        return [
            dict({
                'key': k,
                'lq_path': k,
                'gt_path': k
            }, **({
                'flow_path': k
            } if self.use_flow else {})) for k in keys
        ]

