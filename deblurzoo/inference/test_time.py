"""Test-time transforms of the inference engine: geometric self-ensemble, tiling, frame windows, streams, memory.

Geometric self-ensemble (Lim et al., EDSR; Brehm et al. use it for their NTIRE 2020 results) runs a network on
flipped and rotated copies of the input, transforms each result back and averages them. It works for any network
whose output has the input's spatial layout (images (b, c, h, w) and clips (b, t, c, h, w): the last two axes are
transformed). Transform sets, each a list of (horizontal flip, quarter turns) applied flip first:

- 4, the paper's ("four different versions by rotating and flipping"): identity, horizontal flip, vertical flip,
  180-degree rotation; no transposition, so h and w keep their sizes;
- 6, the authors' released code: identity, horizontal flip, vertical flip and the three rotations;
- 8, the full dihedral group (EDSR's x8).

Models read ``val.self_ensemble`` (0/false: off, true: 8, or 4, 6, 8).

Tiling (:func:`tiled`) restores an input larger than memory allows in overlapping tiles and blends them with weights
that ramp across each overlap and are zero on the pixels nearest a tile's inner edge, so seams do not show; where a
net sees less than a quarter of the overlap around each pixel the result equals the untiled one. Streams
(:func:`ensemble_stream`, :func:`tiled_stream`) do both for recurrent video nets that restore frame after frame
(``SARNRecurrent.stream``): one stream per transform or tile, run in lockstep, so memory stays constant in the
video's length. The tensor versions are the stream versions over a single item. :func:`sliding_windows` turns a stream
of frames into the clips a window net restores, holding only one window.
:func:`measure_peak_memory` measures what a call needs, to choose a tile size.
"""
import collections
import itertools
import math

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

TRANSFORMS = {
    1: ((False, 0), ),
    4: ((False, 0), (True, 0), (True, 2), (False, 2)),
    6: ((False, 0), (True, 0), (True, 2), (False, 1), (False, 2), (False, 3)),
    8: tuple((flip, k) for flip in (False, True) for k in range(4)),
}


def ensemble_size(value, key='val.self_ensemble'):
    """The number of transforms an option asks for: false/0/None -> 1 (off), true -> 8, or 4, 6, 8."""
    if value is None or value is False or value == 0:
        return 1
    if value is True:
        return 8
    if isinstance(value, int) and value in TRANSFORMS:
        return value
    raise ValueError(f'{key}: use false, true (8 transforms), 4 (the paper\'s flips and 180-degree rotation), 6 (the '
                     f'NTIRE 2020 authors\' code) or 8 (flips and rotations); got {value!r}')


def apply_transform(x, flip, k):
    """Flip the last axis (if ``flip``), then rotate the last two by ``k`` quarter turns."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, (-2, -1)) if k % 4 else x


def invert_transform(y, flip, k):
    """Undo :func:`apply_transform`."""
    if k % 4:
        y = torch.rot90(y, -k, (-2, -1))
    return y.flip(-1) if flip else y


def _lockstep(stream_fn, items, transforms):
    """Run ``stream_fn`` over ``transform(item)`` for every transform, in lockstep over ``items``.

    Yields, per item, an iterator over the branches' outputs (consume it before asking for the next item). Every
    branch has its own stream (its own state, for recurrent nets); ``itertools.tee`` holds only the items the branches
    have not all read yet, a few frames for a recurrent net that looks ahead.
    """
    copies = itertools.tee(items, len(transforms))
    streams = [stream_fn(map(transform, copy)) for transform, copy in zip(transforms, copies)]
    for first in streams[0]:
        yield itertools.chain((first, ), (next(stream) for stream in streams[1:]))


def ensemble_stream(stream_fn, items, num=8):
    """:func:`self_ensemble` for a stream: ``stream_fn`` maps an iterable of tensors (..., h, w) to an iterator of
    outputs, one per input (e.g. ``SARNRecurrent.stream``); yields the average over ``num`` transformed streams."""
    transforms = TRANSFORMS[ensemble_size(num, 'num')]
    if len(transforms) == 1:
        yield from stream_fn(items)
        return
    forward = [lambda x, flip=flip, k=k: apply_transform(x, flip, k) for flip, k in transforms]
    for outs in _lockstep(stream_fn, items, forward):
        total = None
        for (flip, k), out in zip(transforms, outs):
            out = invert_transform(out, flip, k)
            total = out if total is None else total + out
        yield total / len(transforms)


def self_ensemble(fn, x, num=8):
    """Average of ``fn`` over ``num`` flipped/rotated copies of ``x``, each transformed back.

    Args:
        fn (callable): Tensor -> tensor of the same spatial layout (e.g. a network in eval mode).
        x (Tensor): (..., h, w) input.
        num (int): 1 (just ``fn(x)``), 4, 6 or 8 (see the module docstring). Default: 8.

    Returns:
        Tensor: The averaged output. Copies run one after another, so memory stays that of one call.
    """
    return next(ensemble_stream(lambda items: map(fn, items), iter((x, )), num))


def tile_starts(length, tile, overlap, align=32):
    """Start offsets of the tiles along an axis of ``length``: multiples of ``align`` (so that strided nets see every
    tile in the phase they see the whole image in), ``tile - overlap`` rounded down to ``align`` apart, the last tile
    running to the border (it may be shorter than ``tile``)."""
    if length <= tile:
        return [0]
    step = (tile - overlap) // align * align
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + step)
    return starts


def check_tiling(tile, overlap, align=32):
    """Validate a tile size, overlap and alignment (errors name the option)."""
    for name, value, low in (('tile', tile, 1), ('tile_overlap', overlap, 0), ('tile_align', align, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f'{name}: a whole number of pixels >= {low}, got {value!r}')
    if tile - overlap < align:
        raise ValueError(f'tile ({tile}) must be at least tile_overlap ({overlap}) + tile_align ({align}), so that '
                         f'neighbouring tiles start {align} pixels apart or more')


def _ramp(start, size, length, overlap, like):
    """Blending weights along one axis for a tile at ``start`` of ``size`` pixels. On each side with a neighbour:
    0 over the outer quarter of the overlap (pixels that see past the tile's edge), a linear ramp over its middle
    half, 1 inside. The neighbour's zero quarter lies where this tile's weight is 1, so every pixel has weight."""
    weight = torch.ones(size, dtype=like.dtype, device=like.device)
    margin = overlap // 4
    ramp = torch.arange(1, size + 1, dtype=like.dtype, device=like.device) - margin
    ramp = (ramp / (overlap - 2 * margin + 1)).clamp(0, 1)
    if start > 0:
        weight = torch.minimum(weight, ramp)
    if start + size < length:
        weight = torch.minimum(weight, ramp.flip(0))
    return weight


def tile_boxes(h, w, tile, overlap, align=32):
    """The (top, left, height, width) of every tile :func:`tiled` runs for an (h, w) input, row by row."""
    check_tiling(tile, overlap, align)
    return [(top, left, min(tile, h - top), min(tile, w - left)) for top in tile_starts(h, tile, overlap, align)
            for left in tile_starts(w, tile, overlap, align)]


def tiled_stream(stream_fn, items, tile, overlap=64, align=32):
    """:func:`tiled` for a stream: one ``stream_fn`` per tile over the tile's crop of every item, in lockstep; yields
    the blended outputs. Every item must have the first one's size."""
    items = iter(items)
    first = next(items, None)
    if first is None:
        return
    h, w = first.shape[-2:]
    boxes = tile_boxes(h, w, tile, overlap, align)
    if len(boxes) == 1:
        yield from stream_fn(itertools.chain((first, ), items))
        return

    def checked():
        for item in itertools.chain((first, ), items):
            if tuple(item.shape[-2:]) != (h, w):
                raise ValueError(f'tiling: every frame must be {h}x{w} like the first, got {tuple(item.shape[-2:])}')
            yield item

    crops = [lambda x, t=t, left=left, th=th, tw=tw: x[..., t:t + th, left:left + tw] for t, left, th, tw in boxes]
    for outs in _lockstep(stream_fn, checked(), crops):
        total = weights = None
        for (top, left, th, tw), out in zip(boxes, outs):
            if tuple(out.shape[-2:]) != (th, tw):
                raise ValueError(f'tiling needs outputs of the input\'s size: a {th}x{tw} tile gave '
                                 f'{tuple(out.shape[-2:])}')
            if total is None:
                total = out.new_zeros(*out.shape[:-2], h, w)
                weights = out.new_zeros(h, w)
            weight = _ramp(top, th, h, overlap, out)[:, None] * _ramp(left, tw, w, overlap, out)[None, :]
            total[..., top:top + th, left:left + tw] += out * weight
            weights[top:top + th, left:left + tw] += weight
        yield total / weights


def tiled(fn, x, tile, overlap=64, align=32):
    """Run ``fn`` on overlapping ``tile`` x ``tile`` crops of ``x`` and blend the results.

    Args:
        fn (callable): Tensor (..., th, tw) -> tensor (..., th, tw) (channels may differ), e.g. a network.
        x (Tensor): (..., h, w) input: an image batch (b, c, h, w) or clips (b, t, c, h, w).
        tile (int): Tile height and width in pixels (smaller inputs run in one piece).
        overlap (int): Minimum overlap of neighbouring tiles, blended by ramps (see :func:`_ramp`). Default: 64.
        align (int): Tiles start at multiples of this (a multiple of the net's total stride). Default: 32.

    Returns:
        Tensor: The blended output (..., h, w). Memory is that of one tile's call plus the output. For a net that
        sees at most ``overlap // 4`` pixels around each output pixel and is aligned, it equals ``fn(x)``.
    """
    return next(tiled_stream(lambda items: map(fn, items), iter((x, )), tile, overlap, align))


def sliding_windows(frames, num_frame):
    """Clips of ``num_frame`` frames centred on each frame of a stream, the ends padded by repeating the first/last
    frame (BasicSR's 'replicate' window, ``generate_frame_indices``), holding only ``num_frame`` frames.

    Args:
        frames (Iterable[Tensor]): (b, c, h, w) frames.
        num_frame (int): Window length (odd: the frame sits in the middle).

    Yields:
        Tensor: (b, num_frame, c, h, w), one per frame, in order.
    """
    half = num_frame // 2
    window = collections.deque(maxlen=num_frame)
    count = 0
    for frame in frames:
        if not window:
            window.extend([frame] * (half + 1))  # frames before the first: the first
        else:
            window.append(frame)
        count += 1
        if count > half:
            yield torch.stack(tuple(window), 1)
    for _ in range(min(count, half)):  # the last frames: repeat the last one
        window.append(window[-1])
        yield torch.stack(tuple(window), 1)


class _PeakMemory(TorchDispatchMode):
    """Follows the bytes of the tensor storages that ops create while it is active, and their peak."""

    def __init__(self):
        super().__init__()
        self.live, self.current, self.peak = {}, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key in [key for key, (ref, _) in self.live.items() if ref.expired()]:
            self.current -= self.live.pop(key)[1]
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != 'meta':
                storage = t.untyped_storage()
                key = (t.device, storage.data_ptr())
                if key not in self.live and storage.nbytes():
                    self.live[key] = (StorageWeakRef(storage), storage.nbytes())
                    self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        return out


def measure_peak_memory(fn, *args, **kwargs):
    """Peak memory (bytes) that ``fn(*args, **kwargs)`` needs beyond its inputs.

    On CUDA (when an argument is a CUDA tensor) this is ``torch.cuda.max_memory_allocated`` above the allocation
    before the call. Elsewhere it is the peak total size of the tensors created during the call that are alive at the
    same time (followed op by op with a dispatch mode; kernels' private scratch buffers are not seen, so it is a lower
    bound).

    Returns:
        tuple: (peak bytes, what ``fn`` returned).
    """
    cuda = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor) and a.is_cuda]
    if cuda:
        device = cuda[0].device
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before, out
    with _PeakMemory() as mode:
        out = fn(*args, **kwargs)
    return mode.peak, out


def plan_tile(bytes_at, budget, h, w, multiple=8, smallest=64):
    """The largest square tile whose predicted memory fits ``budget``, or None when the whole (h, w) input fits.

    Args:
        bytes_at (dict[int, int]): Measured peak bytes at two or more square probe sizes {side: bytes}; memory is
            modelled as a + b * pixels (fitted through the smallest and largest probe).
        budget (int): Bytes available.
        h, w (int): The input's size.
        multiple (int): Tiles are a multiple of this. Default: 8.
        smallest (int): Never tile below this side (a smaller budget raises). Default: 64.

    Raises:
        MemoryError: Even a ``smallest`` tile would not fit.
    """
    (s0, m0), (s1, m1) = min(bytes_at.items()), max(bytes_at.items())
    per_pixel = max((m1 - m0) / max(s1 * s1 - s0 * s0, 1), 0.0)
    fixed = max(m0 - per_pixel * s0 * s0, 0.0)
    if fixed + per_pixel * h * w <= budget:
        return None
    side = math.isqrt(int(max(budget - fixed, 0) / per_pixel)) if per_pixel > 0 else max(h, w)
    side = min(side, max(h, w)) // multiple * multiple
    if side < smallest:
        need = (fixed + per_pixel * smallest * smallest) / 2**20
        raise MemoryError(f'not enough memory to restore even {smallest}x{smallest} tiles: about {need:.0f} MiB '
                          f'needed, {budget / 2**20:.0f} MiB available')
    return side
