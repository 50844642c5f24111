"""HIDE (Shen et al., "Human-Aware Motion Deblurring", ICCV 2019) blurry/sharp pairs: 6397 train and 2025 test images.

Layout (``HIDE_dataset``, as released; every blurry image's sharp partner is the file of the same name in ``GT``)::

    <dataroot>/GT/<name>.png                          sharp images of both splits, e.g. GT/10fromGOPR1088.png
    <dataroot>/train/<name>.png                       blurry, train split
    <dataroot>/test/test-close-ups/<name>.png         blurry, test split: close-ups (HIDE II)
    <dataroot>/test/test-long-shot/<name>.png         blurry, test split: long shots (HIDE I)
    <dataroot>/train.txt, <dataroot>/test.txt         the splits' file names, one a line (10fromGOPR1088.png)

Keys are the blurry images' paths relative to the split folder, without extension: ``test-close-ups/10fromGOPR1088``
(test), ``10fromGOPR1088`` (train). :func:`scan_hide` is the one implementation of that layout (validation included).
"""
from os import path as osp

from basicsr.utils.registry import DATASET_REGISTRY
from .data_util import check_option_keys, report
from .frame_reader import PairDataset, disk_reader
from .layout_scan import frames_in, listing, read_keys
from .safe_io import shown

LAYOUT = ('<dataroot>/GT/<name>.png (sharp) with <dataroot>/train/<name>.png and '
          '<dataroot>/test/{test-close-ups,test-long-shot}/<name>.png (blurry): the HIDE_dataset layout')
SPLITS = ('train', 'test')
SUBSETS = {'close-ups': 'test-close-ups', 'long-shot': 'test-long-shot'}  # test subset -> its folder under test/


def _blur_folders(root, split):
    """[(subset folder or '', folder path)] holding the split's blurry images; errors name a missing folder."""
    if split == 'train':
        folders = [('', osp.join(root, 'train'))]
    else:
        folders = [(sub, osp.join(root, 'test', sub)) for sub in SUBSETS.values()]
    for _, folder in folders:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'HIDE {split} folder not found: {shown(folder)}; expected {LAYOUT}')
    return folders


def scan_hide(root, split='test', subset='all', names=None, names_source='names', problems=None):
    """Scan and validate one split of a HIDE_dataset folder.

    Every selected blurry image must have its sharp partner ``GT/<same file name>``; errors name both paths.

    Args:
        root (str): The dataset root (``HIDE_dataset``).
        split (str): 'train' or 'test'. Default: 'test'.
        subset (str): Test split only: 'all', 'close-ups' (``test/test-close-ups``) or 'long-shot'
            (``test/test-long-shot``). Default: 'all'.
        names (list[str] | None): Image names to select, in this order (``10fromGOPR1088``; a folder part and an
            extension are ignored, so the release's ``test.txt`` works). Every name must be in the split; names of
            the other test subset are skipped. None: every blurry image of the split (subset), sorted by key.
            Default: None.
        names_source (str): Where ``names`` came from, for error messages. Default: 'names'.
        problems (Problems | None): Record every problem in this ``data_util.Problems`` and return the usable pairs
            instead of raising the first. Default: None.

    Returns:
        list[dict]: One dict per pair: ``key``, ``lq_path``, ``gt_path``.
    """
    if split not in SPLITS:
        raise ValueError(f"HIDE split must be one of {', '.join(SPLITS)}, got '{split}'")
    if subset != 'all' and (split != 'test' or subset not in SUBSETS):
        raise ValueError(f"HIDE subset must be 'all' or (with split 'test') one of {', '.join(SUBSETS)}; "
                         f"got '{subset}' with split '{split}'")
    if not osp.isdir(root):
        raise FileNotFoundError(f'HIDE dataroot not found: {shown(root)}; expected {LAYOUT}')
    gt_dir = osp.join(root, 'GT')
    if not osp.isdir(gt_dir):
        raise FileNotFoundError(f'HIDE sharp folder not found: {shown(gt_dir)}; expected {LAYOUT}')
    folders = _blur_folders(root, split)

    found = {}  # name (stem) -> (subset folder, file name) over the whole split
    for sub, folder in folders:
        for stem, file_name in frames_in(folder).items():
            if stem in found:
                other = osp.join(root, 'test', found[stem][0], found[stem][1])
                report(
                    problems,
                    ValueError(f'HIDE image name {shown(stem)} is ambiguous: both {shown(osp.join(folder, file_name))} '
                               f'and {shown(other)} exist (their sharp partner would be the same GT/{shown(stem)})'))
                continue
            found[stem] = (sub, file_name)
    wanted_subs = {sub for sub, _ in folders} if subset == 'all' else {SUBSETS[subset]}
    searched = ', '.join(folder for _, folder in folders)
    if names is None:
        stems = sorted((s for s, (sub, _) in found.items() if sub in wanted_subs), key=lambda s: (found[s][0], s))
    else:
        stems = [osp.splitext(osp.basename(name))[0] for name in names]
        missing = [s for s in stems if s not in found]
        if missing:
            report(
                problems,
                ValueError(f'{len(missing)} image(s) of {shown(names_source)} are not in the HIDE {split} split '
                           f'(searched {shown(searched)}): {listing(missing)}'), [
                               f'{shown(names_source)}: image {shown(s)} is not in the HIDE {split} split '
                               f'(searched {shown(searched)})' for s in missing
                           ])
        stems = [s for s in stems if s in found and found[s][0] in wanted_subs]
    if not stems:
        where = searched if subset == 'all' else osp.join(root, 'test', SUBSETS[subset])
        source = '' if names is None else f' listed in {shown(names_source)}'
        raise FileNotFoundError(f'no HIDE {split} images{source} in {shown(where)}; expected {LAYOUT}')

    sharp = set(frames_in(gt_dir).values())
    samples, orphans = [], []
    for stem in stems:
        sub, file_name = found[stem]
        lq_path = osp.join(root, split, sub, file_name) if sub else osp.join(root, split, file_name)
        gt_path = osp.join(gt_dir, file_name)
        if file_name not in sharp:
            orphans.append((lq_path, gt_path))
            continue
        samples.append({'key': f'{sub}/{stem}' if sub else stem, 'lq_path': lq_path, 'gt_path': gt_path})
    if orphans:
        report(
            problems,
            FileNotFoundError(f'{len(orphans)} HIDE blurry image(s) have no sharp partner in {shown(gt_dir)}: '
                              f'{listing(f"{shown(lq)} (expected {shown(gt)})" for lq, gt in orphans)}'),
            [f'{shown(lq)}: blurry image without its sharp partner {shown(gt)}' for lq, gt in orphans])
    return samples


@DATASET_REGISTRY.register()
class HIDEDataset(PairDataset):
    """HIDE blurry/sharp pairs from a ``HIDE_dataset`` folder (disk backend).

    Samples are those of GoProDataset (``frame_reader.FrameReader.read_pair``): ``lq``, ``gt`` (3, H, W) float RGB in
    [0, 1] (normalised with ``mean``/``std``), ``lq_path``, ``gt_path`` and ``key`` (``test-close-ups/10fromGOPR1088``;
    unique over the set). Reading, size checks, the training crop and the augmentation are the shared ``FrameReader``'s
    (BasicSR's ``paired_random_crop`` and ``augment``); flows are not available. The folder is validated on
    construction; errors name the missing or mismatched paths.

    Args:
        opt (dict): Config for the dataset. Keys:
            dataroot (str): The HIDE_dataset folder.
            split (str): 'train' or 'test'. Default: 'train' if ``phase`` is 'train' else 'test'.
            phase (str): Set by BasicSR from the datasets section ('train', 'val', 'test'). Default: 'test'.
            subset (str): Test split only: 'all' (2025 images), 'close-ups' (``test/test-close-ups``) or
                'long-shot' (``test/test-long-shot``). Default: 'all'.
            meta_info_file (str): A txt file of image names, one a line, that selects (and orders) the pairs, e.g.
                the release's ``HIDE_dataset/test.txt`` (``10fromGOPR1088.png``). Every name must be in the split;
                with ``subset``, names of the other subset are skipped. Default: None (every image of the split).
            io_backend (dict): ``{type: disk}`` (the only backend). Default: ``{type: disk}``.
            gt_size, use_hflip, use_rot, use_channel_permute, mean, std, check_sizes: as in :class:`GoProDataset`
                (``gt_size`` is required in training).
    """

    OPTION_KEYS = ('dataroot', 'split', 'subset', 'meta_info_file', 'io_backend', 'gt_size', 'use_hflip', 'use_rot',
                   'use_channel_permute', 'mean', 'std', 'check_sizes')

    def __init__(self, opt, problems=None):
        super().__init__()
        check_option_keys(opt, self.OPTION_KEYS, 'HIDEDataset')
        self.opt = opt
        self.reader = disk_reader(opt, 'HIDEDataset', f'the HIDE_dataset folder: {LAYOUT}')
        self.split = opt.get('split') or ('train' if self.reader.is_train else 'test')
        meta = opt.get('meta_info_file')
        self.samples = scan_hide(
            opt['dataroot'],
            self.split,
            subset=opt.get('subset', 'all'),
            names=read_keys(meta) if meta else None,
            names_source=f'meta_info_file {shown(meta)}',
            problems=problems)
        if opt.get('check_sizes', False):
            self.reader.check_stored_sizes(self.file_groups(), problems)

