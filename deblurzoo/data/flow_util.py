"""Bi-directional optical flows stored beside a dataset (for SVDN's position loss).

One file per blurry frame holds both flows as a 4-channel 16-bit PNG: channels
``(u_prev, v_prev, u_next, v_next)`` in pixels (u: +x, right; v: +y, down), each stored as
``round(flow * FLOW_SCALE) + FLOW_OFFSET``. That is 1/64 px resolution over +-512 px, lossless PNG, and -- being an
image -- it goes into LMDB unchanged with BasicSR's ``make_lmdb_from_imgs``. ``.npy`` files (float, H x W x 4) are
read too. Every error names the flow file; empty files, undecodable ones, wrong shapes and non-finite values
(NaN or inf, which a loss would spread through the whole batch) are refused.

Files are read and written as bytes (``safe_io``: any file name, atomic writes, the header's pixel limit); OpenCV
only encodes and decodes in memory. numpy, OpenCV and ``safe_io`` only: ``scripts/compute_flows.py`` loads this file
without importing the package.
"""
import io
import os

import cv2
import numpy as np
from numpy.lib import format as npy_format

from . import safe_io  # noqa: F401  (scripts/compute_flows.py loads this module alone and reaches safe_io through it)
from .safe_io import decode_bytes, encode_image, read_bytes, read_head, shown, write_bytes_atomic

FLOW_SCALE = 64.0
FLOW_OFFSET = 32768
FLOW_CHANNELS = 4


def encode_flow(flow):
    """(H, W, 4) float flow -> (H, W, 4) uint16 image."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != FLOW_CHANNELS:
        raise ValueError(f'expected a flow of shape (H, W, {FLOW_CHANNELS}), got {flow.shape}')
    return np.clip(np.rint(flow * FLOW_SCALE) + FLOW_OFFSET, 0, 65535).astype(np.uint16)


def decode_flow(img, path='<flow>'):
    """(H, W, 4) uint16 image -> (H, W, 4) float32 flow; ``path`` only names the source in errors."""
    if img is None:
        raise ValueError(f'{shown(path)}: cannot decode the flow file (corrupt or truncated)')
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != FLOW_CHANNELS:
        raise ValueError(f'{shown(path)} is not a flow file: expected a {FLOW_CHANNELS}-channel 16-bit PNG, '
                         f'got dtype {img.dtype} and shape {img.shape}')
    return (img.astype(np.float32) - FLOW_OFFSET) / FLOW_SCALE


def write_flow(path, flow):
    """Write ``flow`` (H, W, 4) to ``path`` (.png: 16-bit encoding; .npy: float16), atomically
    (``safe_io.write_bytes_atomic``: a complete file or none; an OSError names ``path`` and the cause)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if os.fsdecode(path).endswith('.npy'):
        buf = io.BytesIO()
        np.save(buf, np.asarray(flow, dtype=np.float16))
        content = buf.getbuffer()
    else:
        content = encode_image('.png', encode_flow(flow), name=path)
    write_bytes_atomic(path, content)


def is_flow_file(path):
    """Whether the file at ``path`` is in :func:`write_flow`'s format, by its header alone (cheap): a 16-bit RGBA PNG
    (4 channels), or for ``.npy`` an (H, W, 4) array. A writer checks it before replacing a file, so that no image or
    other file of the user's is ever taken for a flow and overwritten."""
    try:
        head = read_head(path, 4096)
    except (OSError, ValueError):
        return False
    if os.fsdecode(path).endswith('.npy'):
        try:
            shape, _ = _npy_header(io.BytesIO(head))
        except (ValueError, EOFError, OSError, SyntaxError, TypeError):
            return False
        return len(shape) == 3 and shape[2] == FLOW_CHANNELS
    return (head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR' and len(head) >= 26
            and head[24] == 16 and head[25] == 6)  # bit depth 16, colour type 6 (RGBA)


def read_flow(path):
    """Read a flow file written by :func:`write_flow` as (H, W, 4) float32."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'flow file not found: {shown(path)} (compute flows with scripts/compute_flows.py)')
    return flow_from_bytes(read_bytes(path), path)


def flow_from_bytes(content, path='<flow>'):
    """Decode the bytes of a flow file (from disk or an LMDB) as (H, W, 4) float32.

    ``path`` picks the codec (``.npy``: float array; anything else, e.g. an LMDB key: the 16-bit PNG encoding) and
    names the source in errors. Raises a ValueError naming ``path`` for an empty or undecodable file, a shape other
    than (H, W, 4) and non-finite values.
    """
    if len(content) == 0:
        raise ValueError(f'{shown(path)}: empty file (0 bytes)')
    if not os.fsdecode(path).endswith('.npy'):
        return decode_flow(decode_bytes(content, path, cv2.IMREAD_UNCHANGED), path)
    flow = _npy_from_bytes(content, path)
    if flow.ndim != 3 or flow.shape[2] != FLOW_CHANNELS:
        raise ValueError(f'{shown(path)}: expected a flow of shape (H, W, {FLOW_CHANNELS}), got {flow.shape}')
    if flow.dtype.kind not in 'fiu':
        raise ValueError(f'{shown(path)}: expected a float flow, got dtype {flow.dtype}')
    flow = flow.astype(np.float32)
    finite = np.isfinite(flow)
    if not finite.all():
        y, x = np.argwhere(~finite)[0][:2]
        raise ValueError(
            f'{shown(path)}: {int((~finite).any(axis=2).sum())} pixel(s) have non-finite flow values (NaN or '
            f'inf), the first at (y, x) = ({y}, {x}); recompute the flows (scripts/compute_flows.py)')
    return flow


def _npy_header(stream):
    """(shape, dtype) of the ``.npy`` data in ``stream``, which is left at the start of the array's bytes."""
    version = npy_format.read_magic(stream)
    read_header = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
    if version not in read_header:
        raise ValueError(f'unsupported .npy format version {version}')
    shape, _, dtype = read_header[version](stream)
    return shape, dtype


def _npy_from_bytes(content, path):
    """The array of a ``.npy`` file's bytes, its header's size checked against the bytes there (and the pixel limit,
    ``safe_io.max_image_pixels``) before any data is read; a ValueError names ``path``."""
    from .safe_io import max_image_pixels
    stream = io.BytesIO(content)
    try:
        shape, dtype = _npy_header(stream)
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as err:
        raise ValueError(f'{shown(path)}: cannot decode the flow file: {err}') from None
    if len(shape) != 3 or shape[2] != FLOW_CHANNELS:
        raise ValueError(f'{shown(path)}: expected a flow of shape (H, W, {FLOW_CHANNELS}), got {shape}')
    if shape[0] * shape[1] > max_image_pixels():
        raise ValueError(f'{shown(path)}: its header declares a {shape[1]}x{shape[0]} flow (w x h), more than the '
                         f'limit of {max_image_pixels()} pixels')
    if dtype.hasobject or len(content) - stream.tell() < int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f'{shown(path)}: cannot decode the flow file: truncated ({len(content)} bytes for a '
                         f'{shape} {dtype} array)')
    try:
        return np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(f'{shown(path)}: cannot decode the flow file: {err}') from None
