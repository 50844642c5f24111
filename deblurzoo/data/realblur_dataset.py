"""RealBlur (Rim et al., "Real-World Blur Dataset for Learning and Benchmarking Deblurring Algorithms", ECCV 2020):
RealBlur-J (camera JPEGs) and RealBlur-R (from raw) blurry/sharp pairs, 3758 train and 980 test pairs each.

Layout (``RealBlur``, as released; both splits share the scene folders, the list files tell them apart)::

    <dataroot>/RealBlur-J_ECC_IMCORR_centroid_itensity_ref/<scene>/blur/blur_<n>.png     e.g. scene230/blur/blur_7.png
    <dataroot>/RealBlur-J_ECC_IMCORR_centroid_itensity_ref/<scene>/gt/gt_<n>.png         its sharp partner
    <dataroot>/RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/<scene>/{blur,gt}/...    the same for RealBlur-R
    <dataroot>/RealBlur_{J,R}_{train,test}_list.txt

Each line of a list file is ``<gt path> <blur path>`` (sharp first), relative to ``<dataroot>``, e.g.
``RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene230/gt/gt_7.png RealBlur-J_ECC_IMCORR_centroid_itensity_ref/
scene230/blur/blur_7.png``. Keys are ``<scene>/<blurry image name>`` without extension (``scene230/blur_7``).
:func:`scan_realblur` is the one implementation of that layout (validation included).
"""
from os import path as osp

from basicsr.utils.registry import DATASET_REGISTRY
from .data_util import check_option_keys, report
from .frame_reader import PairDataset, disk_reader
from .layout_scan import listing
from .safe_io import read_bytes, shown

VARIANTS = {'J': 'RealBlur-J_ECC_IMCORR_centroid_itensity_ref', 'R': 'RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref'}
SPLITS = ('train', 'test')
LAYOUT = ('<dataroot>/{RealBlur-J_ECC_IMCORR_centroid_itensity_ref,RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref}'
          '/<scene>/{blur,gt}/{blur,gt}_<n>.png with <dataroot>/RealBlur_{J,R}_{train,test}_list.txt: the RealBlur '
          'layout')


def list_file_name(variant, split):
    """The release's list file of a variant and split: ``RealBlur_J_test_list.txt``."""
    return f'RealBlur_{variant}_{split}_list.txt'


def read_pair_list(list_file, problems=None):
    """``[(line number, gt path, blur path)]`` of a RealBlur list file (``<gt path> <blur path>`` lines).

    Empty lines and lines starting with ``#`` are skipped; errors name the file and line (with ``problems``, a
    ``data_util.Problems``, malformed lines are recorded there and skipped).
    """
    if not osp.isfile(list_file):
        raise FileNotFoundError(f'RealBlur list file not found: {shown(list_file)}')
    pairs = []
    text = read_bytes(list_file).decode('utf-8', 'surrogateescape')  # names as os.listdir gives them
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith('#'):
            continue
        if len(tokens) != 2:
            report(problems,
                   ValueError(f"{shown(list_file)}:{number}: expected '<gt path> <blur path>', got {line.strip()!r}"))
            continue
        gt, blur = tokens
        if osp.basename(osp.dirname(gt)) == 'blur' and osp.basename(osp.dirname(blur)) == 'gt':
            report(
                problems,
                ValueError(f"{shown(list_file)}:{number}: the paths are in the wrong order: RealBlur lists are "
                           f"'<gt path> <blur path>' (sharp first), got {line.strip()!r}"))
            continue
        pairs.append((number, gt, blur))
    if not pairs:
        raise ValueError(f'RealBlur list file {shown(list_file)} lists no pairs')
    return pairs


def scan_realblur(root, variant='J', split='test', list_file=None, problems=None):
    """Read and validate one variant and split of a RealBlur folder from its list file.

    Every listed path must be inside the variant's folder and exist; errors name the list file, the line and the
    missing paths (the blurry image and its sharp partner).

    Args:
        root (str): The dataset root (``RealBlur``); the list's paths are relative to it.
        variant (str): 'J' or 'R'. Default: 'J'.
        split (str): 'train' or 'test'. Default: 'test'.
        list_file (str | None): A list file in the release's format that replaces
            ``<root>/RealBlur_<variant>_<split>_list.txt`` (e.g. a subset of it). Default: None.
        problems (Problems | None): Record every problem in this ``data_util.Problems`` and return the usable pairs
            instead of raising the first. Default: None.

    Returns:
        list[dict]: One dict per listed pair, in list order: ``key``, ``lq_path``, ``gt_path``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"RealBlur variant must be one of {', '.join(VARIANTS)}, got '{variant}'")
    if split not in SPLITS:
        raise ValueError(f"RealBlur split must be one of {', '.join(SPLITS)}, got '{split}'")
    if not osp.isdir(root):
        raise FileNotFoundError(f'RealBlur dataroot not found: {shown(root)}; expected {LAYOUT}')
    folder = VARIANTS[variant]
    if not osp.isdir(osp.join(root, folder)):
        raise FileNotFoundError(f'RealBlur-{variant} folder not found: {osp.join(root, folder)}; expected {LAYOUT}')
    list_file = list_file or osp.join(root, list_file_name(variant, split))

    samples, keys, outside, missing_lq, orphans = [], {}, [], [], []  # the last three: (path, line number, gt path)
    for number, gt, blur in read_pair_list(list_file, problems):
        parts = osp.normpath(blur).split(osp.sep)
        if osp.normpath(gt).split(osp.sep)[0] != folder or parts[0] != folder or len(parts) < 3:
            outside.append((blur, number, gt))
            continue
        key = f'{parts[1]}/{osp.splitext(parts[-1])[0]}'  # <scene>/blur_<n>
        if key in keys:
            report(
                problems,
                ValueError(
                    f'{shown(list_file)}: lines {keys[key]} and {number} both list the blurry image {shown(key)}'))
            continue
        keys[key] = number
        lq_path, gt_path = osp.join(root, blur), osp.join(root, gt)
        if not osp.isfile(lq_path):
            missing_lq.append((lq_path, number, gt_path))
        elif not osp.isfile(gt_path):
            orphans.append((lq_path, number, gt_path))
        else:
            samples.append({'key': key, 'lq_path': lq_path, 'gt_path': gt_path})
    if outside:
        report(
            problems,
            ValueError(f'{len(outside)} pair(s) of {shown(list_file)} are not in the RealBlur-{variant} folder '
                       f'{shown(folder)} '
                       f'(is it a list of the other variant?): '
                       f'{listing(f"line {number}: {shown(blur)}" for blur, number, _ in outside)}'),
            [
                f'{shown(list_file)}:{number}: {shown(blur)} is not in the RealBlur-{variant} folder {shown(folder)}'
                for blur, number, _ in outside
            ])
    if missing_lq:
        report(
            problems,
            FileNotFoundError(f'{len(missing_lq)} blurry image(s) listed in {shown(list_file)} not found: '
                              f'{listing(f"{shown(lq)} (line {number})" for lq, number, _ in missing_lq)}'),
            [f'{shown(lq)}: not found (listed in {shown(list_file)}:{number})' for lq, number, _ in missing_lq])
    if orphans:
        report(
            problems,
            FileNotFoundError(
                f'{len(orphans)} blurry image(s) listed in {shown(list_file)} have no sharp partner: '
                f'{listing(f"{shown(lq)} (expected {shown(gt)}, line {number})" for lq, number, gt in orphans)}'), [
                    f'{shown(lq)}: its sharp partner {shown(gt)} is not found (listed in {shown(list_file)}:{number})'
                    for lq, number, gt in orphans
                ])
    return samples


@DATASET_REGISTRY.register()
class RealBlurDataset(PairDataset):
    """RealBlur-J or RealBlur-R blurry/sharp pairs from a ``RealBlur`` folder and its list files (disk backend).

    Samples are those of GoProDataset (``frame_reader.FrameReader.read_pair``): ``lq``, ``gt`` (3, H, W) float RGB in
    [0, 1] (normalised with ``mean``/``std``), ``lq_path``, ``gt_path`` and ``key`` (``scene230/blur_7``; unique over
    the set). Image sizes differ from scene to scene. Reading, size checks, the training crop and the augmentation are
    the shared ``FrameReader``'s (BasicSR's ``paired_random_crop`` and ``augment``); flows are not available. The list
    file and every listed path are validated on construction; errors name the missing or mismatched paths.

    Args:
        opt (dict): Config for the dataset. Keys:
            dataroot (str): The RealBlur folder (holding the variants' folders and the list files).
            variant (str): 'J' (``RealBlur-J_ECC_IMCORR_centroid_itensity_ref``) or 'R'
                (``RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref``). Default: 'J'.
            split (str): 'train' or 'test'. Default: 'train' if ``phase`` is 'train' else 'test'.
            phase (str): Set by BasicSR from the datasets section ('train', 'val', 'test'). Default: 'test'.
            meta_info_file (str): A list file in the release's format (``<gt path> <blur path>`` lines relative to
                ``dataroot``) that replaces ``<dataroot>/RealBlur_<variant>_<split>_list.txt``, e.g. a subset of it.
                Default: None.
            io_backend (dict): ``{type: disk}`` (the only backend). Default: ``{type: disk}``.
            gt_size, use_hflip, use_rot, use_channel_permute, mean, std, check_sizes: as in :class:`GoProDataset`
                (``gt_size`` is required in training).
    """

    OPTION_KEYS = ('dataroot', 'variant', 'split', 'meta_info_file', 'io_backend', 'gt_size', 'use_hflip', 'use_rot',
                   'use_channel_permute', 'mean', 'std', 'check_sizes')

    def __init__(self, opt, problems=None):
        super().__init__()
        check_option_keys(opt, self.OPTION_KEYS, 'RealBlurDataset')
        self.opt = opt
        self.reader = disk_reader(opt, 'RealBlurDataset', f'the RealBlur folder: {LAYOUT}')
        self.split = opt.get('split') or ('train' if self.reader.is_train else 'test')
        self.variant = str(opt.get('variant', 'J'))
        self.samples = scan_realblur(
            opt['dataroot'], self.variant, self.split, list_file=opt.get('meta_info_file'), problems=problems)
        if opt.get('check_sizes', False):
            self.reader.check_stored_sizes(self.file_groups(), problems)

