"""The restorer: runs a network in eval mode on images, clips and frame streams, the same way for the CLI and for the
models' validation and test path.

What it does around the net, in this order for each frame: a two-stage model's frozen stage 1 (on every frame, with
the same self-ensemble and tiling), the net according to its declared frame mode (``deblurzoo.archs.protocol``: an
image net per frame, a window net on the ``num_frame`` frames around each frame with the ends repeated, a sequence
net through its ``stream`` or, without one, on the whole clip), tiling (``tile``; ``'auto'`` measures the net's memory
at two small sizes and tiles only when the input would not fit), geometric self-ensemble and float16 (CUDA). Nets pad
their inputs to the multiple they need themselves (every deblurzoo arch does), so the restorer never pads. Frame
streams are restored lazily: memory holds one window or the net's recurrent state, not the video.
"""
import itertools
import os

import torch

from deblurzoo.archs.protocol import arch_info
from .errors import InferenceError
from .test_time import (check_tiling, ensemble_size, ensemble_stream, measure_peak_memory, plan_tile, self_ensemble,
                        sliding_windows, tiled, tiled_stream)


def _nonfinite(t):
    """'3 NaN and 1 inf values' (how many of ``t``'s values are not finite)."""
    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    return ' and '.join(f'{n} {what}' for n, what in ((nan, 'NaN'), (inf, 'inf')) if n) + ' values'


def _device(net):
    return next(itertools.chain(net.parameters(), net.buffers(), [torch.empty(0)])).device


class Restorer:
    """Restores images, clips and frame streams with ``net`` (in eval mode; the caller sets it).

    Args:
        net (nn.Module): The network (bare, not a DDP wrapper), in eval mode; its frame mode is its declared one.
        stage1 (nn.Module | None): A two-stage model's frozen image net, run on every frame first. Default: None.
        self_ensemble (int | bool | None): 1/0/False/None (off), True (8), 4, 6 or 8 flips and rotations averaged.
            Default: 1.
        tile (int | str | None): Tile side in pixels; 0/None: never tile; 'auto': tile only when the input would not
            fit ``max_memory`` (measured, see :meth:`plan`). Default: None.
        tile_overlap (int): Overlap of neighbouring tiles. Default: 64.
        max_memory (int | None): Bytes the net may use with ``tile='auto'``; None: 80% of the free GPU memory, or
            half of the available RAM on CPU.
        fp16 (bool): Run in float16 (CUDA only). Default: False.
        check_finite (bool): Refuse inputs and results holding NaN or inf (:class:`InferenceError`). Default: True.
        label (str | None): How errors name the net (e.g. 'SVDN with the weights in net_g.pth'); None: its class.
        forward_kwargs (dict | None): Keyword arguments of every ``net(x, **forward_kwargs)`` call (not of stage 1 or
            ``stream``), e.g. a sampling ``policy``. Default: None.
    """

    def __init__(self, net, stage1=None, self_ensemble=1, tile=None, tile_overlap=64, max_memory=None, fp16=False,
                 check_finite=True, label=None, forward_kwargs=None):
        self.net, self.stage1, self.forward_kwargs = net, stage1, dict(forward_kwargs or {})
        self.info = arch_info(net)
        if stage1 is not None and arch_info(stage1).mode != 'image':
            raise InferenceError(f'stage 1 must be an image net; {type(stage1).__name__} is a '
                                 f'{arch_info(stage1).mode} net')
        self.num = ensemble_size(self_ensemble, 'self_ensemble')
        self.tile, self.tile_overlap, self.max_memory = tile or None, tile_overlap, max_memory
        if isinstance(self.tile, int):
            check_tiling(self.tile, tile_overlap)
        elif self.tile not in (None, 'auto'):
            raise ValueError(f"tile: a number of pixels, 0, None or 'auto', got {tile!r}")
        self.device = _device(net)
        if fp16 and self.device.type != 'cuda':
            raise InferenceError('--fp16 runs on CUDA only; this model is on the CPU')
        self.fp16, self.check_finite = fp16, check_finite
        self.label = label or type(net).__name__
        self._memory_probe = None

    # one pass of a net, in float16 when asked; outputs back in float32
    def _call(self, net, x):
        kwargs = self.forward_kwargs if net is self.net else {}
        with torch.autocast('cuda', dtype=torch.float16, enabled=self.fp16):
            out = net(x, **kwargs)
        if not torch.is_tensor(out):
            raise TypeError(f'{type(net).__name__} returned a {type(out).__name__} in eval mode; nets return the '
                            f'restored image (auxiliary outputs only with return_aux=True)')
        return out.float()

    def _stream(self, frames):
        with torch.autocast('cuda', dtype=torch.float16, enabled=self.fp16):
            for out in self.net.stream(frames):
                yield out.float()

    def _image_fn(self, net, tile):
        if tile is None:
            return lambda x: self._call(net, x)
        return lambda x: tiled(lambda t: self._call(net, t), x, tile, self.tile_overlap)

    # ------------------------------------------------------------------------------------------------ tile planning

    def _probe(self):
        """Peak memory of one pass at two small square sizes (with the clip length the net takes)."""
        if self._memory_probe is None:
            probes = {}
            for side in (64, 128):
                x = torch.rand(1, 3, side, side, device=self.device)
                probes[side] = measure_peak_memory(lambda t: next(self._frames(iter((t, )), None)), x)[0]
            self._memory_probe = probes
        return self._memory_probe

    def budget(self):
        """Bytes the net may use with ``tile='auto'``."""
        if self.max_memory is not None:
            return self.max_memory
        if self.device.type == 'cuda':
            return int(0.8 * torch.cuda.mem_get_info(self.device)[0])
        try:
            with open('/proc/meminfo') as f:
                info = dict(line.split(':', 1) for line in f)
            return int(info['MemAvailable'].split()[0]) * 1024 // 2
        except (OSError, KeyError, ValueError):
            return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') // 2

    def plan(self, h, w):
        """The tile side for an (h, w) input, or None to restore it whole."""
        if self.tile != 'auto':
            return self.tile
        return plan_tile(self._probe(), self.budget(), h, w, smallest=max(64, self.tile_overlap + 32))

    # ----------------------------------------------------------------------------------------------------- checks

    def _check_input(self, x, name):
        if self.check_finite and not torch.isfinite(x).all():
            raise InferenceError(f'{name} holds {_nonfinite(x)}; inputs must be finite (pixels in [0, 1])')
        return x

    def _check_output(self, y, name):
        """Refuse a result with NaN/inf (a broken checkpoint, or float16 overflow) rather than write a garbage image."""
        if self.check_finite and not torch.isfinite(y).all():
            hint = '; float16 can overflow: try without --fp16' if self.fp16 else ''
            raise InferenceError(f'{self.label} gave {_nonfinite(y)} for {name}; refusing to return a broken result '
                                 f'(the checkpoint is damaged or does not suit this input){hint}')
        return y

    # ------------------------------------------------------------------------------------------------------ public

    def image(self, x, name='input tensor'):
        """Restore one image (b, c, h, w) (a video net sees it as a one-frame video).

        Raises:
            InferenceError (a ValueError): ``x`` holds NaN or inf, or the net gives NaN or inf (with
                ``check_finite``); ``name`` (the file) is named in the message.
        """
        return next(self.video(iter((x, )), name=lambda i: name))

    def clip(self, lq, name='input frame'):
        """Restore a clip (b, t, c, h, w) -> (b, t, c, h, w): :meth:`video` over its frames."""
        return torch.stack(list(self.video(lq.unbind(1), name=name)), 1)

    def restore(self, lq, name='input'):
        """:meth:`image` for (b, c, h, w), :meth:`clip` for (b, t, c, h, w)."""
        return self.clip(lq, f'{name} frame') if lq.dim() == 5 else self.image(lq, name)

    def video(self, frames, tile='plan', name='input frame'):
        """Restore a stream of frames (b, c, h, w); yields one restored frame per input frame, in order.

        ``name``: what errors call frame i: ``f'{name} {i}'``, or ``name(i)`` when it is callable. A frame holding
        NaN or inf, or a result holding them, raises :class:`InferenceError` (a ValueError) with ``check_finite``.
        """
        label = name if callable(name) else (lambda i: f'{name} {i}')
        frames = iter(frames)
        first = next(frames, None)
        if first is None:
            return
        if tile == 'plan':
            tile = self.plan(*first.shape[-2:])
        checked = (self._check_input(frame, label(i)) for i, frame in enumerate(itertools.chain((first, ), frames)))
        for i, out in enumerate(self._frames(checked, tile)):
            yield self._check_output(out, label(i))

    @torch.no_grad()  # on a generator: around each step, so the caller's code between frames keeps its grad mode
    def _frames(self, frames, tile):
        """The restored frames of a stream, by the net's frame mode (see the module docstring)."""
        info = self.info
        if self.stage1 is not None:
            stage1 = self._image_fn(self.stage1, tile)
            frames = (self_ensemble(stage1, f, self.num) for f in frames)
        if info.stream:
            def stream(items):
                return self._stream(items) if tile is None else tiled_stream(self._stream, items, tile,
                                                                             self.tile_overlap)
            yield from ensemble_stream(stream, frames, self.num)
            return
        fn = self._image_fn(self.net, tile)
        if info.mode == 'sequence':  # no stream: the whole clip in one call
            yield from self_ensemble(fn, torch.stack(list(frames), 1), self.num).unbind(1)
            return
        if info.mode == 'window':
            frames = sliding_windows(frames, info.num_frame)
        for item in frames:
            yield self_ensemble(fn, item, self.num)
