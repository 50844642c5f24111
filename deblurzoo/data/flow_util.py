"""Bi-directional optical flows stored beside a dataset (for SVDN's position loss).

One file per blurry frame holds both flows as a 4-channel 16-bit PNG: channels
``(u_prev, v_prev, u_next, v_next)`` in pixels (u: +x, right; v: +y, down), each stored as
``round(flow * FLOW_SCALE) + FLOW_OFFSET``. That is 1/64 px resolution over +-512 px, lossless PNG, and -- being an
image -- it goes into LMDB unchanged with BasicSR's ``make_lmdb_from_imgs``. ``.npy`` files (float, H x W x 4) are
read too. Every error names the flow file; empty files, undecodable ones, wrong shapes and non-finite values
(NaN or inf, which a loss would spread through the whole batch) are refused.

numpy and OpenCV only: ``scripts/compute_flows.py`` loads this file without importing the package.
"""
import io
import os

import cv2
import numpy as np

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
        raise ValueError(f'{path}: cannot decode the flow file (corrupt or truncated)')
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != FLOW_CHANNELS:
        raise ValueError(f'{path} is not a flow file: expected a {FLOW_CHANNELS}-channel 16-bit PNG, '
                         f'got dtype {img.dtype} and shape {img.shape}')
    return (img.astype(np.float32) - FLOW_OFFSET) / FLOW_SCALE


def write_flow(path, flow):
    """Write ``flow`` (H, W, 4) to ``path`` (.png: 16-bit encoding; .npy: float16)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith('.npy'):
        np.save(path, np.asarray(flow, dtype=np.float16))
    elif not cv2.imwrite(path, encode_flow(flow)):
        raise OSError(f'cannot write the flow file {path}')


def read_flow(path):
    """Read a flow file written by :func:`write_flow` as (H, W, 4) float32."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'flow file not found: {path} (compute flows with scripts/compute_flows.py)')
    with open(path, 'rb') as f:
        return flow_from_bytes(f.read(), path)


def flow_from_bytes(content, path='<flow>'):
    """Decode the bytes of a flow file (from disk or a FileClient/LMDB) as (H, W, 4) float32.

    ``path`` picks the codec (``.npy``: float array; anything else, e.g. an LMDB key: the 16-bit PNG encoding) and
    names the source in errors. Raises a ValueError naming ``path`` for an empty or undecodable file, a shape other
    than (H, W, 4) and non-finite values.
    """
    if len(content) == 0:
        raise ValueError(f'{path}: empty file (0 bytes)')
    if not path.endswith('.npy'):
        return decode_flow(cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED), path)
    try:
        flow = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(f'{path}: cannot decode the flow file: {err}') from None
    if flow.ndim != 3 or flow.shape[2] != FLOW_CHANNELS:
        raise ValueError(f'{path}: expected a flow of shape (H, W, {FLOW_CHANNELS}), got {flow.shape}')
    if flow.dtype.kind not in 'fiu':
        raise ValueError(f'{path}: expected a float flow, got dtype {flow.dtype}')
    flow = flow.astype(np.float32)
    finite = np.isfinite(flow)
    if not finite.all():
        y, x = np.argwhere(~finite)[0][:2]
        raise ValueError(f'{path}: {int((~finite).any(axis=2).sum())} pixel(s) have non-finite flow values (NaN or '
                         f'inf), the first at (y, x) = ({y}, {x}); recompute the flows (scripts/compute_flows.py)')
    return flow
