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
from deblurzoo.data.safe_io import shown
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
    try:
        img = decode_stored(safe_io.read_bytes(path), path)
    except (OSError, ValueError) as err:
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
        raise InferenceError(f'cannot create output folder {shown(folder)}: {err.strerror or err}') from None


def write_image(path, rgb, info):
    """Write an RGB float image in the layout ``info`` recorded (:func:`read_image`): encoded in memory, written to a
    temporary file beside ``path``, checked and renamed into place (``deblurzoo.data.safe_io``), so a failure (a full
    disk) leaves no partial file, and a file already at ``path`` is replaced, never rewritten in place."""
    _makedirs(osp.dirname(osp.abspath(path)))
    try:
        safe_io.write_image(path, _to_layout(rgb, info))
    except (OSError, ValueError) as err:  # they name the file
        raise InferenceError(str(err)) from None


def check_writable_format(path, info=None):
    ext = osp.splitext(path)[1].lower()
    if ext not in IMAGE_EXTS or not cv2.haveImageWriter('x' + ext):  # OpenCV sees the extension only
        raise InferenceError(f'{shown(path)}: cannot write {ext or "files without an extension"} images; use one of '
                             f'{", ".join(IMAGE_EXTS)}')
    if info is not None and info['dtype'] == np.uint16 and ext not in ('.png', '.tif', '.tiff', '.pgm', '.ppm'):
        raise InferenceError(f'{shown(path)}: {ext} cannot hold the input\'s 16 bits; write .png or .tif')


def to_tensor(rgb, device):
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)


def to_array(t):
    return t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def side_by_side(inp, out):
    return np.concatenate([inp, out], axis=1)


def read_video(path):
    """Frames of a video file as RGB float arrays in [0, 1], read lazily (any file name: OpenCV opens it through
    ``safe_io.open_video``'s temporary link); also its frame rate and declared frame count. A stream that ends before
    the declared count raises an :class:`InferenceError` after its last frame, naming the file and how many frames
    were read."""
    try:
        cap, fps, count = safe_io.open_video(path)
    except ValueError as err:
        raise InferenceError(str(err)) from None

    def frames():
        try:
            for frame in safe_io.video_frames(cap, path, count):
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        except ValueError as err:
            raise InferenceError(str(err)) from None

    return frames(), fps, count


class VideoWriter:
    """Writes RGB float frames to a video file atomically (``safe_io.AtomicVideoWriter``: a temporary file beside the
    target, reopened and its frames counted, then renamed), opened at the first frame (which sets the size).
    :meth:`close` finishes and checks it; :meth:`abort` leaves no file."""

    def __init__(self, path, fps):
        self.path = path
        self.video = safe_io.AtomicVideoWriter(path, fps, FOURCC.get(osp.splitext(path)[1].lower(), 'mp4v'))

    @property
    def count(self):
        return self.video.count

    def write(self, rgb):
        bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
        if self.video.writer is None and self.video.count == 0:
            _makedirs(osp.dirname(osp.abspath(self.path)))
        self.video.write(bgr)

    def close(self):
        return self.video.close()

    def abort(self):
        self.video.abort()


def kind_of(path):
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTS:
        return 'image'
    if ext in VIDEO_EXTS:
        return 'video'
    raise InferenceError(f'{shown(path)}: unsupported file type {ext or "(no extension)"}; '
                         f'images: {", ".join(IMAGE_EXTS)}; '
                         f'videos: {", ".join(VIDEO_EXTS)}')
