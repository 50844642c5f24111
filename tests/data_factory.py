"""Tiny GoPro-layout datasets for tests (a helper module, not a test file).

``make_gopro_tree`` writes ``<root>/<split>/<seq>/{blur,sharp[,flow]}/%06d.png`` the way GoPro was made: each
sequence is a camera panning at constant velocity over a textured canvas; a sharp frame is one sub-frame, its blurry
frame the average of ``SUBFRAMES`` consecutive sub-frames around it, and the flows are the exact (constant) motion
between consecutive frames, in ``flow_util``'s format and sign convention (the one scripts/compute_flows.py writes).
"""
import importlib.util
import os
import zlib
from os import path as osp

import cv2
import numpy as np

from deblurzoo.data.flow_util import write_flow

SUBFRAMES = 7  # sub-frames averaged into one blurry frame; also the camera's shift per frame in units of velocity
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _canvas(rng, h, w):
    """(h, w, 3) float BGR texture in [0, 255]: smooth gradients, soft blobs and sharp-edged rectangles."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        gx, gy = rng.uniform(-1, 1, 2)
        img[..., c] = 128 + 60 * np.sin(gx * xx / 9 + gy * yy / 7 + rng.uniform(0, 6.3))
    for _ in range(6):  # soft blobs
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 8)
        img += np.exp(-((yy - cy)**2 + (xx - cx)**2) / (2 * r * r))[..., None] * rng.uniform(-80, 80, 3)
    for _ in range(8):  # edges: what motion blur visibly smears
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        img[y0:y0 + rng.integers(3, 12), x0:x0 + rng.integers(3, 12)] = rng.uniform(0, 255, 3)
    return np.clip(img, 0, 255)


def _panning_sequence(rng, frames, size):
    """A camera panning at constant velocity over a ``_canvas``: ``frames`` (blurry, sharp) uint8 BGR pairs (the
    blurry frame the average of ``SUBFRAMES`` sub-frames, the sharp one the middle sub-frame) and the (h, w, 4) flow
    between consecutive frames (the same for all)."""
    h, w = size
    travel = frames * SUBFRAMES  # sub-frames the camera moves over
    vx, vy = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1)][rng.integers(0, 6)]  # px per sub-frame
    canvas = _canvas(rng, h + travel, w + travel)  # (h + travel, w + travel, 3)

    def subframe(t):
        """(h, w, 3) view of the canvas at sub-frame t in [0, travel)."""
        oy, ox = t * vy + (travel - 1) * (vy < 0), t * vx + (travel - 1) * (vx < 0)
        return canvas[oy:oy + h, ox:ox + w]

    # the camera moves by (vx, vy) * SUBFRAMES per frame, so content moves the other way:
    # (u_prev, v_prev, u_next, v_next) = (+s vx, +s vy, -s vx, -s vy) everywhere, s = SUBFRAMES
    flow = np.broadcast_to(np.float32([vx, vy, -vx, -vy]) * SUBFRAMES, (h, w, 4))
    pairs = []
    for i in range(frames):
        ts = range(i * SUBFRAMES, (i + 1) * SUBFRAMES)
        blur = np.mean([subframe(t) for t in ts], axis=0)
        sharp = subframe(ts[SUBFRAMES // 2])
        pairs.append((np.rint(blur).astype(np.uint8), np.rint(sharp).astype(np.uint8)))
    return pairs, flow


def make_gopro_tree(root,
                    split='train',
                    seqs=('GOPR0001_00_00', 'GOPR0002_00_00'),
                    frames=3,
                    size=(40, 48),
                    with_flow=False,
                    seed=0):
    """Write a tiny GoPro-layout split and return its GOPRO_Large-like root.

    Args:
        root (str): Folder to write into (created if needed); other splits already there are kept.
        split (str): Split folder name. Default: 'train'.
        seqs (tuple[str]): Sequence folder names. Default: ('GOPR0001_00_00', 'GOPR0002_00_00').
        frames (int): Frames per sequence, numbered from a per-sequence start like GoPro's (e.g. 000047.png).
            Default: 3.
        size (tuple[int]): (h, w) of the frames. Default: (40, 48).
        with_flow (bool): Also write ``flow/%06d.png`` (4-channel flow files). Default: False.
        seed (int): Seed of the content, frame numbers and motions (combined with ``split``). Default: 0.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
    for seq in seqs:
        start = int(rng.integers(1, 200))
        pairs, flow = _panning_sequence(rng, frames, size)
        for i, (blur, sharp) in enumerate(pairs):
            name = f'{start + i:06d}.png'
            for folder, img in (('blur', blur), ('sharp', sharp)):
                os.makedirs(osp.join(root, split, seq, folder), exist_ok=True)
                cv2.imwrite(osp.join(root, split, seq, folder, name), img)
            if with_flow:
                write_flow(osp.join(root, split, seq, 'flow', name), flow)
    return root


def load_script(name):
    """Import ``scripts/<name>.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f'_script_{name}', osp.join(REPO_ROOT, 'scripts', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_gopro_lmdb(root, split, out_dir, name='gopro', force=False):
    """Pack ``root/split`` with scripts/make_lmdb.py; returns {'blur': path, 'sharp': path[, 'flow': path]}."""
    argv = ['--root', root, '--split', split, '--out', out_dir, '--name', name] + (['--force'] if force else [])
    load_script('make_lmdb').main(argv)
    made = {kind: osp.join(out_dir, f'{name}_{split}_{kind}.lmdb') for kind in ('blur', 'sharp', 'flow')}
    return {kind: path for kind, path in made.items() if osp.isdir(path)}


# ---------------------------------------------------------------- DVD (video sequences)

# DVD's test split (deblurzoo/data/meta_info/meta_info_DVD_test.txt, typed again here) and two of its training sequences
DVD_TEST_SEQS = ('720p_240fps_2', 'IMG_0003', 'IMG_0021', 'IMG_0030', 'IMG_0031', 'IMG_0032', 'IMG_0033', 'IMG_0037',
                 'IMG_0039', 'IMG_0049')
DVD_TRAIN_SEQS = ('GOPR9633', 'IMG_0001')


def make_dvd_tree(root, seqs=DVD_TRAIN_SEQS + DVD_TEST_SEQS, frames=4, size=(40, 48), seed=0, ext='.jpg'):
    """Write a tiny DeepVideoDeblurring_Dataset with the release's layout and return its ``quantitative_datasets``.

    ``<root>/DeepVideoDeblurring_Dataset/quantitative_datasets/<seq>/{input,GT}/%05d<ext>`` (from 00000), each
    sequence a camera panning over a texture as in ``make_gopro_tree`` (input: the average of sub-frames, GT: the
    middle one).

    Args:
        root (str): Folder to write into (created if needed).
        seqs (tuple[str]): Sequence names. Default: the 2 ``DVD_TRAIN_SEQS`` and the 10 ``DVD_TEST_SEQS``.
        frames (int | dict): Frames per sequence, or {seq: frames}. Default: 4.
        size (tuple[int]): (h, w) of the frames. Default: (40, 48).
        seed (int): Seed of the content. Default: 0.
        ext (str): '.jpg' (DVD's) or '.png' (lossless). Default: '.jpg'.

    Returns:
        str: The ``quantitative_datasets`` folder.
    """
    rng = np.random.default_rng([seed, zlib.crc32(b'dvd')])
    data_root = osp.join(root, 'DeepVideoDeblurring_Dataset', 'quantitative_datasets')
    for seq in seqs:
        pairs, _ = _panning_sequence(rng, frames[seq] if isinstance(frames, dict) else frames, size)
        for folder in ('input', 'GT'):
            os.makedirs(osp.join(data_root, seq, folder), exist_ok=True)
        for i, (blur, sharp) in enumerate(pairs):
            cv2.imwrite(osp.join(data_root, seq, 'input', f'{i:05d}{ext}'), blur)
            cv2.imwrite(osp.join(data_root, seq, 'GT', f'{i:05d}{ext}'), sharp)
    return data_root


def make_dvd_lmdb(data_root, out_dir, partition='all', name='DVD', force=False):
    """Pack ``data_root``'s ``partition`` with ``scripts/make_lmdb.py --layout dvd``; {'lq': path, 'gt': path}."""
    argv = ['--layout', 'dvd', '--root', data_root, '--partition', partition, '--out', out_dir, '--name', name]
    return load_script('make_lmdb').main(argv + (['--force'] if force else []))[partition]


# ---------------------------------------------------------------- HIDE and RealBlur (paired test sets)

# HIDE_dataset image names per blurry folder (train/, test/test-close-ups/, test/test-long-shot/)
HIDE_NAMES = {
    'train': ('1fromGOPR0950', '2fromGOPR0950'),
    'test-close-ups': ('10fromGOPR1088', '11fromGOPR1088'),
    'test-long-shot': ('1fromGOPR0862', '5fromGOPR1096'),
}
# RealBlur scene folders -> the split whose list file names them
REALBLUR_SCENES = {'scene230': 'test', 'scene050': 'test', 'scene003': 'train'}
REALBLUR_FOLDERS = {
    'J': 'RealBlur-J_ECC_IMCORR_centroid_itensity_ref',
    'R': 'RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref',
}


def _sharp_and_blurry(rng, h, w):
    """(sharp, blurry) uint8 BGR images: a ``_canvas`` texture and the same blurred by a random short line kernel."""
    sharp = _canvas(rng, h, w)
    kernel = np.zeros((5, 5), np.float32)
    kernel[2, :] = 1 / 5  # a horizontal line, turned by a random multiple of 45 degrees
    turn = cv2.getRotationMatrix2D((2, 2), 45 * float(rng.integers(0, 4)), 1)
    kernel = cv2.warpAffine(kernel, turn, (5, 5))
    blurry = cv2.filter2D(sharp, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    return np.rint(sharp).astype(np.uint8), np.rint(blurry).astype(np.uint8)


def make_hide_tree(root, names=HIDE_NAMES, size=(40, 48), seed=0):
    """Write a tiny HIDE_dataset folder with the release's layout and return its root.

    ``<root>/GT/<name>.png`` (sharp) for every name, its blurry partner ``<root>/train/<name>.png`` or
    ``<root>/test/<test folder>/<name>.png``, and ``<root>/{train,test}.txt`` listing the splits' file names.

    Args:
        root (str): Folder to write into (created if needed).
        names (dict): Blurry folder ('train', 'test-close-ups', 'test-long-shot') -> image names without extension.
            Default: ``HIDE_NAMES`` (two per folder).
        size (tuple[int]): (h, w) of the images. Default: (40, 48).
        seed (int): Seed of the content. Default: 0.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    lists = {'train': [], 'test': []}
    os.makedirs(osp.join(root, 'GT'), exist_ok=True)
    for folder, stems in names.items():
        split = 'train' if folder == 'train' else 'test'
        blur_dir = osp.join(root, folder) if split == 'train' else osp.join(root, 'test', folder)
        os.makedirs(blur_dir, exist_ok=True)
        for stem in stems:
            sharp, blurry = _sharp_and_blurry(rng, *size)
            cv2.imwrite(osp.join(root, 'GT', f'{stem}.png'), sharp)
            cv2.imwrite(osp.join(blur_dir, f'{stem}.png'), blurry)
            lists[split].append(f'{stem}.png')
    for split, files in lists.items():
        with open(osp.join(root, f'{split}.txt'), 'w') as f:
            f.writelines(f'{name}\n' for name in files)
    return root


def make_realblur_tree(root, variant='J', scenes=REALBLUR_SCENES, frames=2, size=(40, 48), seed=0):
    """Write one variant of a tiny RealBlur folder with the release's layout and return its root.

    ``<root>/<variant folder>/<scene>/{blur,gt}/{blur,gt}_<n>.png`` for n = 1..frames, and the list files
    ``<root>/RealBlur_<variant>_{train,test}_list.txt`` (lines ``<gt path> <blur path> `` relative to ``root``, with
    the release's trailing space); call it once per variant to write both into one root.

    Args:
        root (str): Folder to write into (created if needed).
        variant (str): 'J' or 'R'. Default: 'J'.
        scenes (dict): Scene folder -> the split that lists it ('train' or 'test'). Default: ``REALBLUR_SCENES``
            (two test scenes, one train scene).
        frames (int): Pairs per scene. Default: 2.
        size (tuple[int]): (h, w) of the images. Default: (40, 48).
        seed (int): Seed of the content (combined with ``variant``). Default: 0.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng([seed, zlib.crc32(variant.encode())])
    folder = REALBLUR_FOLDERS[variant]
    lists = {'train': [], 'test': []}
    for scene, split in scenes.items():
        for kind in ('blur', 'gt'):
            os.makedirs(osp.join(root, folder, scene, kind), exist_ok=True)
        for n in range(1, frames + 1):
            gt, blur = f'{folder}/{scene}/gt/gt_{n}.png', f'{folder}/{scene}/blur/blur_{n}.png'
            sharp, blurry = _sharp_and_blurry(rng, *size)
            cv2.imwrite(osp.join(root, gt), sharp)
            cv2.imwrite(osp.join(root, blur), blurry)
            lists[split].append(f'{gt} {blur} \n')
    for split, lines in lists.items():
        with open(osp.join(root, f'RealBlur_{variant}_{split}_list.txt'), 'w') as f:
            f.writelines(lines)
    return root


def read_rgb(path):
    """(3, h, w) float RGB tensor in [0, 1] of an image file, as the datasets return it."""
    import torch
    return torch.from_numpy(cv2.imread(path)[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)


def assert_paired_crops(dataset, index, crop, seeds=4):
    """Training samples of ``dataset[index]`` are ``crop`` x ``crop`` windows taken at the same place in the blurry
    and the sharp image (for several random seeds)."""
    import random

    import torch
    sample_paths = dataset.samples[index]
    full_lq, full_gt = read_rgb(sample_paths['lq_path']), read_rgb(sample_paths['gt_path'])
    h, w = full_gt.shape[-2:]
    for seed in range(seeds):
        random.seed(seed)
        sample = dataset[index]
        assert sample['lq'].shape == sample['gt'].shape == (3, crop, crop)
        hits = [(y, x) for y in range(h - crop + 1) for x in range(w - crop + 1)
                if torch.equal(full_gt[:, y:y + crop, x:x + crop], sample['gt'])]
        assert hits and any(torch.equal(full_lq[:, y:y + crop, x:x + crop], sample['lq']) for y, x in hits)


# ---------------------------------------------------------------- REDS (video clips)

REDS_CLIPS = ('000', '001', '002')


def make_reds_tree(root, clips=REDS_CLIPS, num_frames=4, size=(40, 48), split='train', jpeg=False, seed=0):
    """Write one split of a tiny REDS folder with the release's names and return ``root``.

    ``<root>/<split>_blur/<clip>/%08d.png`` and ``<root>/<split>_sharp/<clip>/%08d.png`` (frames from 00000000), e.g.
    ``train_blur/000/00000000.png``; with ``jpeg`` the blurry frames are ``<split>_blur_jpeg/<clip>/%08d.jpg`` (the
    other distribution). Each clip is a camera panning over a texture as in ``make_gopro_tree``.

    Args:
        root (str): The REDS folder to write into (created if needed); other splits already there are kept.
        clips (tuple[str]): Clip names (REDS': 3 digits). Default: ``REDS_CLIPS`` ('000', '001', '002').
        num_frames (int | dict): Frames per clip, or {clip: frames}. Default: 4.
        size (tuple[int]): (h, w) of the frames. Default: (40, 48).
        split (str): 'train' or 'val'. Default: 'train'.
        jpeg (bool): Write the blurry frames as ``<split>_blur_jpeg/<clip>/<frame>.jpg``. Default: False.
        seed (int): Seed of the content (combined with ``split``). Default: 0.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng([seed, zlib.crc32(f'reds_{split}'.encode())])
    blur_folder, blur_ext = (f'{split}_blur_jpeg', '.jpg') if jpeg else (f'{split}_blur', '.png')
    for clip in clips:
        pairs, _ = _panning_sequence(rng, num_frames[clip] if isinstance(num_frames, dict) else num_frames, size)
        for folder in (blur_folder, f'{split}_sharp'):
            os.makedirs(osp.join(root, folder, clip), exist_ok=True)
        for i, (blur, sharp) in enumerate(pairs):
            cv2.imwrite(osp.join(root, blur_folder, clip, f'{i:08d}{blur_ext}'), blur)
            cv2.imwrite(osp.join(root, f'{split}_sharp', clip, f'{i:08d}.png'), sharp)
    return root


def make_reds_lmdb(root, out_dir, split='train', name='REDS', force=False):
    """Pack ``root``'s ``split`` with ``scripts/make_lmdb.py --layout reds``; {'lq': path, 'gt': path}."""
    argv = ['--layout', 'reds', '--root', root, '--split', split, '--out', out_dir, '--name', name]
    return load_script('make_lmdb').main(argv + (['--force'] if force else []))[split]


# ---------------------------------------------------------------- coordinate frames (where did a crop come from)

COORD = 4  # coordinate images: B = COORD * x, G = COORD * y, R = a per-frame value


def coord_image(size, red):
    """(h, w, 3) uint8 BGR image whose pixels encode their place, B = COORD * x, G = COORD * y, and R = ``red``."""
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    return np.stack([COORD * xx, COORD * yy, np.full_like(xx, red)], axis=2).astype(np.uint8)


def decode_coords(frames):
    """(T, 3, h, w) RGB ``coord_image`` frames, as a dataset returns them -> x, y (T, h, w) and each frame's red."""
    x, y = (frames[:, 2] * 255 / COORD).round(), (frames[:, 1] * 255 / COORD).round()
    red = (frames[:, 0] * 255).round()
    assert (red == red[:, :1, :1]).all(), 'a frame mixes frames'
    return x, y, red[:, 0, 0]


# ---------------------------------------------------------------- damaged files (bad-input tests)


def damage_file(path, how):
    """Damage a file in place the ways copies of datasets break; returns ``path``.

    ``how``: 'empty' (0 bytes), 'truncate' (only its first half: an interrupted copy or download), 'garble' (bytes 8
    to 48 zeroed: a PNG's header checksum or a JPEG's markers break, so it cannot be decoded) or 'text' (not an image).
    """
    with open(path, 'rb') as f:
        content = bytearray(f.read())
    if how == 'empty':
        content = b''
    elif how == 'truncate':
        content = content[:len(content) // 2]
    elif how == 'garble':
        content[8:48] = bytes(40)
    elif how == 'text':
        content = b'this is not an image\n'
    else:
        raise ValueError(f"unknown damage '{how}': empty, truncate, garble or text")
    with open(path, 'wb') as f:
        f.write(content)
    return path
