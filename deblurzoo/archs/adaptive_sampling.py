"""Pixel-adaptive sampling for encoder-decoders (paper 003, SAPHNet, Sec. 3.1), as pieces any arch can use.

An encoder-decoder normally halves its feature maps uniformly at every level. With adaptive sampling a level keeps as
many pixels as the uniform grid would have, but chooses *which* full-resolution pixels, from a probability map: hard
regions are sampled densely, flat ones sparsely, at the same cost.

Vocabulary
----------
- *full-resolution grid*: the ``H x W`` pixels of the encoder-decoder's input.
- :class:`SampleGrid`: the full-resolution pixels a level's features live at. Level 0 is every pixel; a uniformly
  sampled level ``l`` is the lattice of stride ``2**l`` (exactly the pixels a chain of stride-2 convs keeps); an
  adaptively sampled level ``l`` has as many pixels as that lattice, chosen by :class:`PixelSampler`, nested in level
  ``l-1``'s pixels.
- *tokens*: a level's features, ``(b, n, c)`` with ``n`` the grid's pixel count (raster order for lattices).
- *fallback*: where a level reads pixels it did not sample (a neighbour of a sampled pixel, say): the encoder features
  of the next finer level at that pixel, projected to the level's width -- the paper's "skip from the encoder features
  of the next higher resolution" (:class:`Fallback`, read through :class:`LevelMap`).

Operations (dense path on lattices, identical to the usual convolutions; gather path on sampled grids):
- :class:`TokenConv`: a ``k x k`` convolution at a level; its taps sit ``2**l`` full-resolution pixels apart, as on the
  uniform lattice; taps on unsampled pixels read the fallback.
- :class:`TokenConv` with ``anchors``: the stride-2 "downsampling" conv, evaluated only at the next level's pixels.
- :func:`scatter_to`: puts a coarser level's tokens back at their pixels within the finer level (the other pixels keep
  the encoder skip), before a merge conv -- the decoder's "upsampling".
- :func:`pixel_dependent_filter`: per-pixel kernels and offsets over a level's ``k x k`` neighbourhood (bilinear,
  zero outside the image); a modulated deformable conv on lattices.

Cost: a level's reads go through its *table* ``[zero; tokens; fallback computed so far]`` (:meth:`LevelMap.table`):
pixels become table rows once (the regular taps' rows are worked out once per level and shared by its convs,
``_tap_plan``, cached on the grid; the bilinear corners once per filter), and a conv is one gather of its columns
(``index_select``, or ``embedding_bag`` summing the weighted corners) times one matrix product, in chunks of anchors
that stay in cache when no gradient is needed. The fallback is computed only at the unsampled pixels actually read,
each once per level (:class:`Fallback`); no full-resolution feature map is built.

Wrapping your own encoder-decoder
---------------------------------
1. Build each block as a module ``forward(level_map, enc=None) -> tokens`` using :class:`TokenConv` (drop-in for
   ``nn.Conv2d(c, c', k, padding=k // 2)``) and per-token ops (``nn.Linear``, activations).
2. Give ``AdaptiveEncoderDecoder`` (``patch_hierarchy.py``) a ``block(num_feat, level, decoder)`` factory and the level
   widths; it handles the input/output convs, the sampled downsampling, the scatter-and-merge upsampling and the
   fallbacks.
3. Put a :class:`PixelSampler` on the features of whatever precedes the encoder-decoder (a previous stage, or a light
   pre-pass; detach them), call it for the grids (``policy='uniform' | 'sample' | 'greedy'``), and add
   ``AdaptiveSamplingRewardLoss`` (deblurzoo.losses) on the log-probabilities it returns.
``MultiPatchHierarchy`` (``patch_hierarchy.py``) does steps 2 and 3 for a DMPHN-style stack of stages; ``DMPHN``
(``dmphn_arch.py``) is its plain-conv worked example, ``SAPHNet`` (``saphn_arch.py``) the paper's full model.
"""
import math
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from deblurzoo.ops import deform_conv2d

POLICIES = ('uniform', 'sample', 'greedy')


# ------------------------------------------------------------------------------------------------------------ grids


class SampleGrid:
    """The full-resolution pixels of one level, per batch element.

    Args:
        flat (Tensor): (b, n) long, flat indices ``y * W + x`` into the full-resolution grid, distinct per row.
        size (tuple[int, int]): Full-resolution (H, W).
        spacing (int): Distance in full-resolution pixels between a level's neighbouring taps (``2**level``).
        lattice (tuple[int, int] | None): (h, w) when ``flat`` is the uniform lattice of stride ``spacing`` in raster
            order; the level's tokens then reshape to a (b, c, h, w) map and ops take their dense path.
    """

    def __init__(self, flat, size, spacing, lattice=None):
        self.flat = flat
        self.size = tuple(size)
        self.spacing = spacing
        self.lattice = lattice
        self._inverse = None
        self._plans = {}  # (kernel size, spacing, anchors) -> tap plan (_tap_plan), shared by the level's ops
        self._lattice = None

    @classmethod
    def uniform(cls, batch, size, spacing, device):
        """The lattice of stride ``spacing`` anchored at pixel (0, 0): what stride-2 convs keep."""
        h, w = size
        ys = torch.arange(0, h, spacing, device=device)
        xs = torch.arange(0, w, spacing, device=device)
        flat = (ys[:, None] * w + xs[None, :]).reshape(1, -1).expand(batch, -1)
        return cls(flat, size, spacing, lattice=(len(ys), len(xs)))

    @property
    def batch(self):
        return self.flat.shape[0]

    @property
    def num(self):
        return self.flat.shape[1]

    def inverse(self):
        """(b * H * W,) long: for every full-resolution pixel of every image, its row in the flattened tokens
        (``b * n``), or -1 where the level did not sample it."""
        if self._inverse is None:
            b, n = self.flat.shape
            hw = self.size[0] * self.size[1]
            inv = torch.full((b * hw, ), -1, dtype=torch.long, device=self.flat.device)
            offsets = torch.arange(b, device=self.flat.device)[:, None]
            inv[(self.flat + offsets * hw).reshape(-1)] = (torch.arange(n, device=self.flat.device) + offsets *
                                                           n).reshape(-1)
            self._inverse = inv
        return self._inverse

    def lattice_flat(self):
        """(b, n_u) the uniform lattice of this grid's spacing (anchored at (0, 0), raster order), built once."""
        if self._lattice is None:
            self._lattice = SampleGrid.uniform(self.batch, self.size, self.spacing, self.flat.device).flat
        return self._lattice

    def global_index(self, pix):
        """(b, ...) full-resolution pixel indices -> indices into the batch-flattened grid (``b * H * W``)."""
        hw = self.size[0] * self.size[1]
        offsets = torch.arange(pix.shape[0], device=pix.device).view(-1, *([1] * (pix.dim() - 1)))
        return pix + offsets * hw

    def mask(self):
        """(b, 1, H, W) float: 1 on the sampled pixels (for pictures and losses)."""
        b = self.batch
        out = torch.zeros(b, self.size[0] * self.size[1], device=self.flat.device)
        out.scatter_(1, self.flat, 1.0)
        return out.view(b, 1, *self.size)


class Fallback:
    """The features a level reads at full-resolution pixels it did not sample, computed lazily and kept.

    ``fn(gidx) -> (k, c)`` gives the features at batch-flattened pixels ``gidx`` (k,); :func:`make_fallback` makes it
    the projected skip of the finer level. Each pixel is computed once, when a read first reaches it, and appended to
    :attr:`values`; :meth:`rows` says where a pixel's features are there. Rows never move (later pixels are
    appended), so an index worked out once stays valid for every later read of the level (its blocks share the
    fallback). The only full-resolution tensor is the integer slot map; the features exist only at the pixels read.

    Without gradients the values live in one buffer with room for a level's tokens in front (:meth:`table`): a
    map's table is then its tokens copied into that buffer, and the fallback is never copied per block.

    Args:
        fn (callable): ``fn(gidx) -> (k, c)``.
        pixels (int): Batch-flattened full-resolution pixels (``b * H * W``).
    """

    def __init__(self, fn, pixels):
        self.fn = fn
        self.pixels = pixels
        self.count = 0
        self.slot = None  # (pixels,) long: row of a pixel in ``values``, -1 until computed
        self._values = None  # (count, c), until a buffer holds them
        self._buffer = None  # [zero; tokens (base - 1 rows); values; room]
        self._base = 0
        self._holder = None  # weak reference to the tokens in the buffer's token rows
        self.generation = 0  # counts :meth:`release`: rows worked out before are stale

    @property
    def values(self):
        """(count, c) the features computed so far, in the order of :meth:`rows`."""
        if self._buffer is not None:
            return self._buffer[self._base:self._base + self.count]
        return self._values

    def rows(self, gidx):
        """Rows of :attr:`values` (shaped like ``gidx``) holding the features at pixels ``gidx``; computes the new
        ones."""
        if self.slot is None:
            self.slot = torch.full((self.pixels, ), -1, dtype=torch.long, device=gidx.device)
        rows = self.slot[gidx]
        new = rows < 0
        if bool(new.any()):
            mark = torch.zeros(self.pixels, dtype=torch.bool, device=gidx.device)  # distinct, ascending, no sort
            mark[gidx[new]] = True
            pix = mark.nonzero().squeeze(1)
            values = self.fn(pix)
            self.slot[pix] = torch.arange(self.count, self.count + pix.numel(), device=pix.device)
            self._append(values)
            rows = self.slot[gidx]
        return rows

    def _append(self, values):
        end = self._base + self.count + values.shape[0]
        if self._buffer is None:
            self._values = values if self._values is None else torch.cat([self._values, values.to(self._values.dtype)])
        else:
            if end > self._buffer.shape[0]:
                self._resize(max(end, min(2 * self._buffer.shape[0], self._base + self.pixels)))
            self._buffer[self._base + self.count:end] = values
        self.count += values.shape[0]

    def _resize(self, rows):
        buffer = self._buffer.new_empty(rows, self._buffer.shape[1])
        buffer[:self._base + self.count] = self._buffer[:self._base + self.count]
        self._buffer = buffer

    def __call__(self, gidx):
        """(k, c) features at pixels ``gidx`` (k,)."""
        rows = self.rows(gidx)
        return self.values[rows]

    def release(self):
        """Free the features computed so far (a level done with: the decoder has moved to a finer one); a later read
        computes them again."""
        self.count, self.slot, self._values, self._buffer, self._holder = 0, None, None, None, None
        self.generation += 1

    def table(self, tokens):
        """``[zero; tokens; values]`` in the fallback's buffer (no gradients: the token rows are overwritten by the
        next map's tokens, so use the table at once)."""
        b, n, c = tokens.shape
        if self._buffer is None:
            self._base = 1 + b * n
            self._buffer = tokens.new_empty(self._base + min(self.pixels, max(2 * self.count, 4 * b * n)), c)
            self._buffer[0] = 0
            if self.count:
                self._buffer[self._base:self._base + self.count] = self._values
            self._values = None
        if self._holder is None or self._holder() is not tokens:
            self._buffer[1:self._base] = tokens.reshape(b * n, c)
            self._holder = weakref.ref(tokens)
        return self._buffer[:self._base + self.count]


def make_fallback(proj, finer):
    """The :class:`Fallback` of a coarser level: ``proj`` (c_finer -> c) of the finer level's encoder features
    ``finer`` (:class:`LevelMap`), at the pixels the coarser level reads and did not sample."""
    grid = finer.grid
    return Fallback(lambda gidx: proj(finer.read(gidx)), grid.batch * grid.size[0] * grid.size[1])


class LevelMap:
    """A level's tokens on its grid, readable at any full-resolution pixel.

    Reads are rows of the level's *table* ``[zero row; tokens (b * n); fallback values]``: :meth:`rows_at` turns
    pixels into table rows (row 0 outside the image), and a conv gathers its columns from :meth:`table` in one op.

    Args:
        tokens (Tensor): (b, n, c).
        grid (SampleGrid): Where the tokens are.
        fallback (Fallback | callable | None): Features at the pixels the grid did not sample (``fallback(gidx) -> (k,
            c)`` for batch-flattened pixels ``gidx`` (k,); a plain callable is wrapped in a :class:`Fallback`); None
            for levels that sample every pixel they are read at (lattices read on their lattice, level 0).
    """

    def __init__(self, tokens, grid, fallback=None):
        if fallback is not None and not isinstance(fallback, Fallback):
            fallback = Fallback(fallback, grid.batch * grid.size[0] * grid.size[1])
        self.tokens = tokens
        self.grid = grid
        self.fallback = fallback
        self._table = None
        self._uniform = None

    def with_tokens(self, tokens):
        """The same grid and fallback with other tokens (e.g. a block's output)."""
        return LevelMap(tokens, self.grid, self.fallback)

    def dense(self):
        """(b, c, h, w) map of a lattice level."""
        h, w = self.grid.lattice
        return self.tokens.transpose(1, 2).reshape(self.tokens.shape[0], -1, h, w)

    def table(self):
        """(1 + b * n + m, c): a zero row, the tokens, the ``m`` fallback features computed so far. Ask for it after
        the rows it is read at (those may add fallback features). Without gradients it lives in the fallback's
        buffer and holds these tokens only until another map of the level asks for its table."""
        grads = torch.is_grad_enabled()
        if self.fallback is not None and not grads:
            return self.fallback.table(self.tokens)
        count = 0 if self.fallback is None else (self.fallback.generation, self.fallback.count)
        if self._table is None or self._table[0] != count:
            b, n, c = self.tokens.shape
            parts = [self.tokens.new_zeros(1, c), self.tokens.reshape(b * n, c)]
            if count and count[1]:
                parts.append(self.fallback.values.to(self.tokens.dtype))
            if not grads:  # kept only while building the graph (saved for backward anyway)
                return torch.cat(parts)
            self._table = (count, torch.cat(parts))
        return self._table[1]

    def rows(self, gidx, valid=None):
        """Table rows (shaped like ``gidx``) of batch-flattened pixels ``gidx``; row 0 (zeros) where ``valid`` is
        False. Computes the fallback at the unsampled pixels read for the first time."""
        rows = self.grid.inverse()[gidx] + 1
        miss = rows == 0
        if valid is not None:
            miss &= valid
        if bool(miss.any()):
            if self.fallback is None:
                raise RuntimeError('a level without fallback was read at pixels it did not sample')
            rows[miss] = self.fallback.rows(gidx[miss]) + (1 + self.grid.batch * self.grid.num)
        if valid is not None:
            rows *= valid
        return rows

    def rows_at(self, y, x):
        """Table rows of full-resolution integer positions ``y``, ``x`` (b, ...) long; row 0 outside the image."""
        h, w = self.grid.size
        valid = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        return self.rows(self.grid.global_index(y.clamp(0, h - 1) * w + x.clamp(0, w - 1)), valid)

    def take(self, rows):
        """Features (rows.shape, c) at table rows ``rows``, read from the tokens and the fallback directly (for
        reads too small to build the table for)."""
        b, n, c = self.tokens.shape
        flat = rows.reshape(-1)
        out = self.tokens.new_zeros(flat.numel(), c)
        hit = ((flat > 0) & (flat <= b * n)).nonzero().squeeze(1)
        out = out.index_copy(0, hit, self.tokens.reshape(b * n, c).index_select(0, flat[hit] - 1))
        if self.fallback is not None and self.fallback.count:
            miss = (flat > b * n).nonzero().squeeze(1)
            values = self.fallback.values.index_select(0, flat[miss] - (1 + b * n))
            out = out.index_copy(0, miss, values.to(out.dtype))
        return out.view(*rows.shape, c)

    def read(self, gidx):
        """Features at batch-flattened pixels ``gidx`` (k,) -> (k, c)."""
        return self.take(self.rows(gidx))

    def read_pixels(self, y, x):
        """Features at full-resolution integer positions ``y``, ``x`` (b, ...) long; zero outside the image.

        Returns:
            Tensor: (b, ..., c).
        """
        return self.take(self.rows_at(y, x))

    def uniform_tokens(self):
        """(b, n_u, c) the level's features on its uniform lattice (stride ``spacing`` from pixel (0, 0), raster order),
        whatever pixels it sampled: a sampled pixel's token, the fallback at the others. On lattices: the tokens.
        Read once per map (the decoder's cross attention reads the encoder's maps at every block)."""
        if self.grid.lattice is not None:
            return self.tokens
        if self._uniform is None:
            rows = _tap_plan(self, 1, self.grid.lattice_flat(), self.grid.spacing)
            self._uniform = self.take(rows[..., 0])
        return self._uniform


# ------------------------------------------------------------------------------------------------------- gathering

# gathered columns (anchors * k * k * c entries) per chunk when no gradient is needed: small enough to stay in cache
_CHUNK_ELEMENTS = 2**20


def _taps(kernel_size, device):
    r = torch.arange(kernel_size, device=device) - kernel_size // 2
    return r.repeat_interleave(kernel_size), r.repeat(kernel_size)  # (k*k,) dy, dx in conv-weight order


def _tap_plan(level_map, kernel_size, anchors, spacing):
    """Table rows (b, n, k * k) where the regular taps of ``anchors`` (b, n) read ``level_map``, worked out once and
    cached on the grid: the level's blocks share it (their tokens change, the grid and the fallback's rows do not)."""
    grid, fallback = level_map.grid, level_map.fallback
    key = (kernel_size, spacing, id(anchors), id(fallback), getattr(fallback, 'generation', 0))
    plan = grid._plans.get(key)
    if plan is None or plan[0] is not anchors or plan[1]() is not fallback:
        w = grid.size[1]
        ty, tx = _taps(kernel_size, anchors.device)
        rows = level_map.rows_at((anchors // w)[..., None] + spacing * ty, (anchors % w)[..., None] + spacing * tx)
        owner = (lambda: None) if fallback is None else weakref.ref(fallback)  # the grid does not keep it alive
        plan = grid._plans[key] = (anchors, owner, rows)
    return plan[2]


_CORNER_DY = (0, 0, 1, 1)  # the four bilinear corners (y0, x0), (y0, x1), (y1, x0), (y1, x1)
_CORNER_DX = (0, 1, 0, 1)


def _bilinear_plan(level_map, kernel_size, offsets, kernel):
    """Table rows and weights (b, n, k * k, 4) of the four bilinear corners of every tap of the level's pixels:
    tap ``j`` of pixel ``p`` reads ``p + spacing * (t_j + offset_j)`` bilinearly from the four surrounding points of
    ``p``'s own lattice (``p + spacing * Z^2``), times ``kernel`` (b, n, k * k); outside the image reads zero. On a
    uniform lattice this is exactly a modulated deformable convolution's sampling, gradients at integer offsets
    included (the floor carries no gradient)."""
    grid = level_map.grid
    w, spacing, device = grid.size[1], grid.spacing, offsets.device
    ty, tx = _taps(kernel_size, device)
    fy = ty.to(offsets.dtype) + offsets[..., 0]  # (b, n, k*k) in lattice units
    fx = tx.to(offsets.dtype) + offsets[..., 1]
    y0, x0 = fy.detach().floor(), fx.detach().floor()
    ly, lx = fy - y0, fx - x0
    cy = torch.tensor(_CORNER_DY, device=device) + y0.long()[..., None]  # (b, n, k*k, 4)
    cx = torch.tensor(_CORNER_DX, device=device) + x0.long()[..., None]
    ay, ax = (grid.flat // w)[..., None, None], (grid.flat % w)[..., None, None]
    rows = level_map.rows_at(ay + spacing * cy, ax + spacing * cx)
    wy1 = ly * kernel
    wy0 = kernel - wy1
    weights = torch.stack((wy0 * (1 - lx), wy0 * lx, wy1 * (1 - lx), wy1 * lx), dim=-1)
    return rows, weights


def _gather_matmul(table, rows, weights, weight, bias):
    """A convolution of gathered taps: ``sum_j W_j sum_i weights[.., j, i] table[rows[.., j, i]]`` per anchor.

    Args:
        table (Tensor): (t, c) rows to read (:meth:`LevelMap.table`).
        rows (Tensor): (b, n, k * k, s) long, ``s`` reads per tap (4 bilinear corners, or 1).
        weights (Tensor | None): Like ``rows``, the reads' weights; None: all 1 (``s`` must be 1).
        weight (Tensor): The conv weight (c_out, c, k, k), laid out as the columns (tap-major, then channels).
        bias (Tensor | None): (c_out,).

    Returns:
        Tensor: (b, n, c_out). The columns (anchors, k * k * c) are gathered (one ``index_select``, or one
        ``embedding_bag`` summing the weighted reads of each tap) and multiplied by the weight in one matrix product;
        without gradients, in chunks of anchors that stay in cache, never all at once.
    """
    b, n, kk, s = rows.shape
    c, c_out = table.shape[1], weight.shape[0]
    w_mat = weight.permute(0, 2, 3, 1).reshape(c_out, kk * c).t()
    rows = rows.reshape(b * n, kk * s)
    if weights is not None:
        weights = weights.reshape(b * n, kk * s).to(table.dtype)
    grads = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (table, weights, weight, bias))
    step = b * n if grads else max(1, _CHUNK_ELEMENTS // (kk * c))
    outs = []
    for start in range(0, b * n, step):
        r = rows[start:start + step]
        if weights is None:
            cols = table.index_select(0, r.reshape(-1))
        else:
            cols = F.embedding_bag(r.reshape(-1, s), table, per_sample_weights=weights[start:start + step].reshape(
                -1, s), mode='sum')
        cols = cols.view(r.shape[0], kk * c)
        outs.append(cols @ w_mat if bias is None else torch.addmm(bias, cols, w_mat))
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out.view(b, n, c_out)


class TokenConv(nn.Conv2d):
    """``nn.Conv2d(in, out, k, padding=k // 2)`` (parameters and checkpoints identical) applied to a level's tokens.

    ``forward(level_map)`` runs the conv at the level's own pixels; ``forward(level_map, anchors=grid)`` evaluates it at
    the pixels of a coarser grid ``grid`` (the stride-2 downsampling conv of a uniform encoder). Lattices take the
    dense path (``F.conv2d``), sampled grids gather their taps from the level's table (:func:`_tap_plan`).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, level_map, anchors=None):
        """Args: level_map (LevelMap, or a sequence of LevelMaps on one grid with one fallback: the conv of their
        channels concatenated, without concatenating them); anchors (SampleGrid | None). Returns: (b, n_out,
        out_channels) tokens."""
        maps = list(level_map) if isinstance(level_map, (list, tuple)) else [level_map]
        grid = maps[0].grid
        target = grid if anchors is None else anchors
        if grid.lattice is not None and target.lattice is not None:
            stride = target.spacing // grid.spacing
            dense = torch.cat([m.dense() for m in maps], dim=1) if len(maps) > 1 else maps[0].dense()
            out = F.conv2d(dense, self.weight, self.bias, stride, self.padding)
            return out.flatten(2).transpose(1, 2)
        rows = _tap_plan(maps[0], self.kernel_size[0], target.flat, grid.spacing)[..., None]  # (b, n, k*k, 1)
        out, start = None, 0
        for m in maps:  # the weight's input channels in the maps' order
            width = m.tokens.shape[2]
            part = _gather_matmul(m.table(), rows, None, self.weight[:, start:start + width],
                                  self.bias if out is None else None)
            out, start = part if out is None else out + part, start + width
        return out


def pixel_dependent_filter(level_map, weight, bias, kernel, offsets):
    """``y(p) = sum_j K_p(j) * W(j) x(p + p_j + dp_j)`` (paper 003, Eq. 17/18) on a level.

    Args:
        level_map (LevelMap): Input tokens (b, n, c).
        weight (Tensor): The fixed learned weight (c_out, c, k, k).
        bias (Tensor | None): (c_out,).
        kernel (Tensor): Per-pixel kernel (b, n, k*k), shared across channels.
        offsets (Tensor | None): Per-pixel offsets (b, n, k*k, 2), (dy, dx) in lattice units, shared across channels.

    Returns:
        Tensor: (b, n, c_out).
    """
    k = int(weight.shape[-1])  # a Python int also while tracing (ONNX export), where shapes are tensors
    grid = level_map.grid
    b, n, _ = level_map.tokens.shape
    if grid.lattice is not None:  # a modulated deformable conv on the lattice (deblurzoo.ops)
        h, w = grid.lattice
        if offsets is None:
            offsets = kernel.new_zeros(b, n, k * k, 2)
        off = offsets.permute(0, 2, 3, 1).reshape(b, 2 * k * k, h, w)
        mask = kernel.transpose(1, 2).reshape(b, k * k, h, w)
        out = deform_conv2d(level_map.dense(), off, weight, bias, padding=(k // 2, k // 2), mask=mask)
        return out.flatten(2).transpose(1, 2)
    if offsets is None:  # the regular taps, weighted by the kernel
        rows, weights = _tap_plan(level_map, k, grid.flat, grid.spacing)[..., None], kernel[..., None]
    else:
        rows, weights = _bilinear_plan(level_map, k, offsets, kernel)
    return _gather_matmul(level_map.table(), rows, weights, weight, bias)


def scatter_to(finer_tokens, finer_grid, coarse_tokens, coarse_grid):
    """Put ``coarse_tokens`` (b, n_c, c) back at their pixels within the finer level (b, n_f, c); the finer level's
    other pixels keep ``finer_tokens`` (the encoder skip). The coarse grid must be nested in the finer one."""
    b, n, c = finer_tokens.shape
    if finer_grid.lattice is not None and coarse_grid.lattice is not None:  # a strided write, no index
        stride = coarse_grid.spacing // finer_grid.spacing
        out = finer_tokens.reshape(b, *finer_grid.lattice, c).clone()
        out[:, ::stride, ::stride] = coarse_tokens.reshape(b, *coarse_grid.lattice, c)
        return out.view(b, n, c)
    rows = finer_grid.inverse()[coarse_grid.global_index(coarse_grid.flat).reshape(-1)]
    if (rows < 0).any():
        raise RuntimeError('scatter_to: the coarse grid is not nested in the finer grid')
    dtype = torch.promote_types(finer_tokens.dtype, coarse_tokens.dtype)  # they differ under autocast
    out = finer_tokens.reshape(b * n, c).to(dtype).index_copy(0, rows, coarse_tokens.reshape(-1, c).to(dtype))
    return out.view(b, n, c)


# --------------------------------------------------------------------------------------------------------- sampler


def level_budgets(size, num_levels, sample_ratio=1.0):
    """Pixels per level 1..num_levels-1: the uniform lattice's count times ``sample_ratio`` (paper 003, Table V),
    within what the finer level has."""
    h, w = size
    budgets, available = [], h * w
    for level in range(1, num_levels):
        s = 2**level
        n = max(1, min(available, int(round(sample_ratio * math.ceil(h / s) * math.ceil(w / s)))))
        budgets.append(n)
        available = n
    return budgets


class PixelSampler(nn.Module):
    """Probability head and policy: which full-resolution pixels each coarser level samples (paper 003, Eqs. 3-4).

    ``P = sigmoid(convs(features))`` is a per-pixel Bernoulli policy over "this pixel is hard to restore". One rule
    chooses the pixels in training and at test (Sec. 3.1.1: "we select the top N hardest pixel-positions with the
    highest probabilities in P"): rank the candidate pixels by P and take the first N. The candidates differ only by
    the draw: ``'greedy'`` (inference, and the baseline) ranks every pixel by P, i.e. the top N by P; ``'sample'``
    (training, "by sampling from the pixelwise probability distributions P") draws every pixel's decision from P and
    ranks the drawn pixels first, each group by P -- so more than N drawn pixels keep the N most probable, fewer than N
    are topped up by P with the most probable undrawn ones. ``'uniform'`` returns the lattices (pre-training, and the
    ablation). Level ``l`` takes the first N_l pixels of the one ranking, so the levels are nested.

    Gradients reach the head only through ``log_prob`` of the draws (the pixel choice itself is not differentiable).
    As in the paper, REINFORCE credits the draws only; the ranking by P inside each group is treated as part of the
    environment (its own dependence on P carries no gradient).
    Args:
        num_in_ch (int): Channels of the features P is computed from.
        num_feat (int): Width of the head's hidden conv. Default: 32.
        num_levels (int): Levels of the encoder-decoder it samples for (level 0 is every pixel). Default: 3.
        sample_ratio (float): Pixels per level relative to the uniform lattice (Table V). Default: 1.0.
    """

    def __init__(self, num_in_ch, num_feat=32, num_levels=3, sample_ratio=1.0):
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(num_in_ch, num_feat, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(num_feat, 1, 3, padding=1))
        self.num_levels = num_levels
        self.sample_ratio = sample_ratio

    def uniform(self, batch, size, device):
        return [SampleGrid.uniform(batch, size, 2**level, device) for level in range(1, self.num_levels)]

    def forward(self, feat, policy='greedy'):
        """Choose the pixels of levels 1..num_levels-1.

        Args:
            feat (Tensor): (b, c, H, W) features at the encoder-decoder's full resolution.
            policy (str): 'greedy', 'sample' or 'uniform'.

        Returns:
            tuple[list[SampleGrid], dict]: The grids, and ``prob`` (b, 1, H, W), ``log_prob`` (b, 1, H, W) of the
            drawn decisions (zeros unless sampled), ``num_selected`` (b,) pixels drawn (the budget's count for other
            policies) and ``budget`` (b,) the level-1 pixel count.
        """
        if policy == 'uniform':
            b, _, h, w = feat.shape
            budget = torch.full((b, ), level_budgets((h, w), 2)[0], dtype=torch.long, device=feat.device)
            zeros = feat.new_zeros(b, 1, h, w)
            return self.uniform(b, (h, w), feat.device), dict(prob=zeros, log_prob=zeros, selected=zeros,
                                                              num_selected=budget, budget=budget)
        return self.choose(self.head(feat), policy)

    def choose(self, logit, policy='greedy'):
        """:meth:`forward` from the head's output ``logit`` (b, 1, H, W) (to compute it once over a whole image and
        choose per patch); ``policy`` 'greedy' or 'sample'."""
        if policy not in ('greedy', 'sample'):
            raise ValueError(f"policy must be 'greedy' or 'sample' here, got '{policy}'")
        b, _, h, w = logit.shape
        budgets = level_budgets((h, w), self.num_levels, self.sample_ratio)
        budget = torch.full((b, ), budgets[0], dtype=torch.long, device=logit.device)
        prob = torch.sigmoid(logit)
        score = prob.detach().flatten(1)
        if policy == 'sample':
            drawn = torch.bernoulli(score)
            # log P(drawn) = drawn * log p + (1 - drawn) * log(1 - p), stably from the logit
            log_prob = -F.binary_cross_entropy_with_logits(logit, drawn.view_as(logit), reduction='none')
            selected = drawn.view_as(logit)
            num_selected = drawn.sum(1).long()
            score = 2 * drawn + score  # drawn pixels score 2 + P, the others P: drawn first, each group by P
        else:
            log_prob = torch.zeros_like(prob)
            selected = torch.zeros_like(prob)
            num_selected = budget
        order = score.topk(budgets[0], dim=1).indices  # sorted by score: the levels' sets are nested
        grids = [
            SampleGrid(order[:, :n].sort(dim=1).values, (h, w), 2**level)
            for level, n in enumerate(budgets, start=1)
        ]
        return grids, dict(prob=prob, log_prob=log_prob, selected=selected, num_selected=num_selected, budget=budget)
