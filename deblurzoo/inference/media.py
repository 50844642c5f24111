"""Media I/O of the inference engine: images (8/16-bit, grayscale, RGB, RGBA) and video files as RGB floats in [0, 1].

What is written has the input's layout: :func:`read_image` records the dtype, channel count and alpha plane that
:func:`write_image` restores; :class:`VideoWriter` writes frames at the input's frame rate. Images decode through the
datasets' checked decoder (``deblurzoo.data.data_util.decode_stored``), so empty, truncated and undecodable files are
named the same way in training and inference.
"""
import os
import os.path as osp

import cv2
import numpy as np
import torch

from deblurzoo.data import safe_io
from deblurzoo.data.data_util import decode_stored
from .errors import InferenceError

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.m4v')
FOURCC = {'.avi': 'MJPG'}  # others: mp4v


def read_image(path):
    """Read an 8- or 16-bit grayscale, RGB or RGBA image.

    Returns:
        tuple: (RGB float32 array (h, w, 3) in [0, 1], info) where info records what :func:`write_image` needs to
        give the result the input's layout: dtype, channels (1, 3 or 4) and the alpha plane.
    """
    if not osp.isfile(path):
        raise InferenceError(f'no such file: {path}')
    with open(path, 'rb') as f:
        content = f.read()
    try:
        img = decode_stored(content, path)
    except ValueError as err:
        raise InferenceError(str(err)) from None
    channels = 1 if img.ndim == 2 else img.shape[2]
    alpha = img[..., 3] if channels == 4 else None
    scale = float(np.iinfo(img.dtype).max)
    if channels == 1:
        rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    else:
        rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32) / scale, {'dtype': img.dtype, 'channels': channels, 'alpha': alpha}


def _to_layout(rgb, info):
    """RGB float (h, w, 3) in [0, 1] -> the input's dtype and channel layout (OpenCV's BGR order)."""
    scale = float(np.iinfo(info['dtype']).max)
    out = (np.clip(rgb, 0, 1) * scale).round().astype(info['dtype'])
    if info['channels'] == 1:
        return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    bgr = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    if info['channels'] == 4:
        return np.dstack([bgr, info['alpha']])
    return bgr


def _makedirs(folder):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise InferenceError(f'cannot create output folder {folder}: {err.strerror or err}') from None


def write_image(path, rgb, info):
    """Write an RGB float image in the layout ``info`` recorded (:func:`read_image`): encoded in memory, written to a
    temporary file beside ``path``, checked and renamed into place (``deblurzoo.data.safe_io``), so a failure (a full
    disk) leaves no partial file, and a file already at ``path`` is replaced, never rewritten in place."""
    _makedirs(osp.dirname(osp.abspath(path)))
    try:
        safe_io.write_image(path, _to_layout(rgb, info))
    except (OSError, ValueError) as err:
        raise InferenceError(f'cannot write {path}: {err}') from None


def check_writable_format(path, info=None):
    ext = osp.splitext(path)[1].lower()
    if ext not in IMAGE_EXTS or not cv2.haveImageWriter(path):
        raise InferenceError(f'{path}: cannot write {ext or "files without an extension"} images; use one of '
                             f'{", ".join(IMAGE_EXTS)}')
    if info is not None and info['dtype'] == np.uint16 and ext not in ('.png', '.tif', '.tiff', '.pgm', '.ppm'):
        raise InferenceError(f'{path}: {ext} cannot hold the input\'s 16 bits; write .png or .tif')


def to_tensor(rgb, device):
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)


def to_array(t):
    return t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def side_by_side(inp, out):
    return np.concatenate([inp, out], axis=1)


def read_video(path):
    """Frames of a video file as RGB float arrays in [0, 1], read lazily; also its frame rate and frame count."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise InferenceError(f'cannot open video {path} (corrupt, or a codec OpenCV cannot decode)')
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def frames():
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        finally:
            cap.release()

    return frames(), fps, count


class VideoWriter:
    """Writes RGB float frames to a video file, opened at the first frame (which sets the size)."""

    def __init__(self, path, fps):
        self.path, self.fps, self.writer, self.count = path, fps, None, 0

    def write(self, rgb):
        bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
        if self.writer is None:
            _makedirs(osp.dirname(osp.abspath(self.path)))
            fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(osp.splitext(self.path)[1].lower(), 'mp4v'))
            self.writer = cv2.VideoWriter(self.path, fourcc, self.fps, (bgr.shape[1], bgr.shape[0]))
            if not self.writer.isOpened():
                raise InferenceError(f'cannot write video {self.path} (no encoder for this container here)')
        self.writer.write(bgr)
        self.count += 1

    def close(self):
        if self.writer is not None:
            self.writer.release()


def kind_of(path):
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTS:
        return 'image'
    if ext in VIDEO_EXTS:
        return 'video'
    raise InferenceError(f'{path}: unsupported file type {ext or "(no extension)"}; images: {", ".join(IMAGE_EXTS)}; '
                         f'videos: {", ".join(VIDEO_EXTS)}')
