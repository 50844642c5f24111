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
    h, w = size
    travel = frames * SUBFRAMES  # sub-frames the camera moves over
    for seq in seqs:
        start = int(rng.integers(1, 200))
        vx, vy = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1)][rng.integers(0, 6)]  # px per sub-frame
        canvas = _canvas(rng, h + travel, w + travel)  # (h + travel, w + travel, 3)

        def subframe(t):
            """(h, w, 3) view of the canvas at sub-frame t in [0, travel)."""
            oy, ox = t * vy + (travel - 1) * (vy < 0), t * vx + (travel - 1) * (vx < 0)
            return canvas[oy:oy + h, ox:ox + w]

        # the camera moves by (vx, vy) * SUBFRAMES per frame, so content moves the other way:
        # (u_prev, v_prev, u_next, v_next) = (+s vx, +s vy, -s vx, -s vy) everywhere, s = SUBFRAMES
        flow = np.broadcast_to(np.float32([vx, vy, -vx, -vy]) * SUBFRAMES, (h, w, 4))
        for i in range(frames):
            name = f'{start + i:06d}.png'
            ts = range(i * SUBFRAMES, (i + 1) * SUBFRAMES)
            blur = np.mean([subframe(t) for t in ts], axis=0)
            sharp = subframe(ts[SUBFRAMES // 2])
            for folder, img in (('blur', blur), ('sharp', sharp)):
                os.makedirs(osp.join(root, split, seq, folder), exist_ok=True)
                cv2.imwrite(osp.join(root, split, seq, folder, name), np.rint(img).astype(np.uint8))
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
