"""Token grids and the per-level read table of adaptive sampling (paper 003, SAPHNet, Sec. 3.1).

A level of an adaptively sampled encoder-decoder keeps its features at chosen full-resolution pixels
(``PixelSampler`` in ``adaptive_sampling.py`` chooses them). This module holds where a level's features are and how
the level is read at any pixel; the operations that read through it are in ``token_ops.py``.

Vocabulary
----------
- *full-resolution grid*: the ``H x W`` pixels of the encoder-decoder's input.
- :class:`SampleGrid`: the full-resolution pixels a level's features live at. Level 0 is every pixel; a uniformly
  sampled level ``l`` is the lattice of stride ``2**l`` (exactly the pixels a chain of stride-2 convs keeps); an
  adaptively sampled level ``l`` has as many pixels as that lattice, chosen by ``PixelSampler``, nested in level
  ``l-1``'s pixels.
- *tokens*: a level's features, ``(b, n, c)`` with ``n`` the grid's pixel count (raster order for lattices).
- *fallback*: where a level reads pixels it did not sample (a neighbour of a sampled pixel, say): the encoder features
  of the next finer level at that pixel, projected to the level's width -- the paper's "skip from the encoder features
  of the next higher resolution" (:class:`Fallback`, read through :class:`LevelMap`).

Cost: a level's reads go through its *table* ``[zero; tokens; fallback computed so far]`` (:meth:`LevelMap.table`):
pixels become table rows once (the regular taps' rows are worked out once per level and shared by its convs,
``_tap_plan``, cached on the grid). The fallback is computed only at the unsampled pixels actually read, each once per
level (:class:`Fallback`); no full-resolution feature map is built.
"""
import weakref

import torch


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
