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
  of the next higher resolution" (:class:`LevelMap`).

Operations (dense path on lattices, identical to the usual convolutions; gather path on sampled grids):
- :class:`TokenConv`: a ``k x k`` convolution at a level; its taps sit ``2**l`` full-resolution pixels apart, as on the
  uniform lattice; taps on unsampled pixels read the fallback.
- :class:`TokenConv` with ``anchors``: the stride-2 "downsampling" conv, evaluated only at the next level's pixels.
- :func:`scatter_to`: puts a coarser level's tokens back at their pixels within the finer level (the other pixels keep
  the encoder skip), before a merge conv -- the decoder's "upsampling".
- :func:`gather_neighbours`: the ``k x k`` neighbourhood (with optional per-tap offsets, bilinear, zero outside the
  image) of every pixel of a level; pixel-dependent filtering is built on it.

Cost: the index set of a level's regular taps is worked out once per level and shared by its convs (``_tap_plan``,
cached on the grid); those taps read the fallback only at the pixels they miss, projected there only. The bilinear
reads of the pixel-dependent filter go through the level's whole map (:meth:`LevelMap.full`): the fallback projected
at every pixel, once per level.

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


class LevelMap:
    """A level's tokens on its grid, readable at any full-resolution pixel.

    Args:
        tokens (Tensor): (b, n, c).
        grid (SampleGrid): Where the tokens are.
        fallback (callable | None): ``fallback(gidx) -> (k, c)`` features for batch-flattened pixels ``gidx`` (k,)
            that the grid did not sample; None for levels that sample every pixel they are read at (lattices read on
            their lattice, level 0).
    """

    def __init__(self, tokens, grid, fallback=None):
        self.tokens = tokens
        self.grid = grid
        self.fallback = fallback
        self._full = None

    def with_tokens(self, tokens):
        """The same grid and fallback with other tokens (e.g. a block's output)."""
        return LevelMap(tokens, self.grid, self.fallback)

    def dense(self):
        """(b, c, h, w) map of a lattice level."""
        h, w = self.grid.lattice
        return self.tokens.transpose(1, 2).reshape(self.tokens.shape[0], -1, h, w)

    def read(self, gidx):
        """Features at batch-flattened pixels ``gidx`` (k,) -> (k, c)."""
        b, n, c = self.tokens.shape
        rows = self.grid.inverse()[gidx]
        hit = rows >= 0
        out = self.tokens.reshape(b * n, c)[rows.clamp(min=0)] * hit[:, None].to(self.tokens.dtype)
        miss = (~hit).nonzero().squeeze(1)
        if miss.numel():
            if self.fallback is None:
                raise RuntimeError('a level without fallback was read at pixels it did not sample')
            out = out.index_put((miss, ), self.fallback(gidx[miss]).to(out.dtype))
        return out

    def uniform_tokens(self):
        """(b, n_u, c) the level's features on its uniform lattice (stride ``spacing`` from pixel (0, 0), raster order),
        whatever pixels it sampled: a sampled pixel's token, the fallback at the others. On lattices: the tokens."""
        if self.grid.lattice is not None:
            return self.tokens
        return gather_neighbours(self, 1, anchors=self.grid.lattice_flat())[:, :, 0]

    def read_pixels(self, y, x):
        """Features at full-resolution integer positions ``y``, ``x`` (b, ...) long; zero outside the image.

        Returns:
            Tensor: (b, ..., c).
        """
        h, w = self.grid.size
        valid = ((y >= 0) & (y < h) & (x >= 0) & (x < w)).to(self.tokens.dtype)
        gidx = self.grid.global_index(y.clamp(0, h - 1) * w + x.clamp(0, w - 1))
        return self.full()[gidx] * valid[..., None]

    def full(self):
        """(b * H * W, c) the level's features at every full-resolution pixel: its tokens where it sampled, the fallback
        elsewhere (zero without fallback); built once per map, for reads at arbitrary pixels."""
        if self._full is None:
            b, n, c = self.tokens.shape
            hw = self.grid.size[0] * self.grid.size[1]
            if self.fallback is None:
                base = self.tokens.new_zeros(b * hw, c)
            else:
                base = self.fallback(torch.arange(b * hw, device=self.tokens.device)).to(self.tokens.dtype)
            self._full = base.index_copy(0, self.grid.global_index(self.grid.flat).reshape(-1),
                                         self.tokens.reshape(b * n, c))
        return self._full


class Fallback:
    """The fallback of a coarser level: ``proj`` (c_finer -> c) of the finer level's encoder features ``finer``
    (:class:`LevelMap`) at pixels the coarser level did not sample.

    ``fallback(gidx)`` reads it anywhere (the bilinear reads of the pixel-dependent filter): the projection is then
    computed once for every full-resolution pixel. ``fallback.at(gidx)`` computes it at the pixels ``gidx`` only, once
    per index tensor (the regular taps of a level's convs share one, see :func:`gather_neighbours`), or reads the
    whole-image projection when it exists. Levels on lattices never miss and compute neither.
    """

    def __init__(self, proj, finer):
        self.proj = proj
        self.finer = finer
        self.every = None
        self.cache = {}

    def __call__(self, gidx):
        if self.every is None:
            grid = self.finer.grid
            every = torch.arange(grid.batch * grid.size[0] * grid.size[1], device=gidx.device)
            self.every = self.proj(self.finer.read(every))  # (b * H * W, c)
        return self.every[gidx]

    def at(self, gidx):
        if self.every is not None:
            return self.every[gidx]
        if id(gidx) not in self.cache:
            self.cache[id(gidx)] = (gidx, self.proj(self.finer.read(gidx)))  # the key's tensor is kept alive
        return self.cache[id(gidx)][1]


def make_fallback(proj, finer):
    """:class:`Fallback` of ``proj`` over ``finer``."""
    return Fallback(proj, finer)


# ------------------------------------------------------------------------------------------------------- gathering


def _taps(kernel_size, device):
    r = torch.arange(kernel_size, device=device) - kernel_size // 2
    return r.repeat_interleave(kernel_size), r.repeat(kernel_size)  # (k*k,) dy, dx in conv-weight order


def _tap_plan(grid, kernel_size, anchors, spacing):
    """Where the regular taps of ``anchors`` (b, n) read on ``grid``, worked out once and cached on the grid (a level's
    blocks share it): ``rows`` (b * n * k * k,) into ``[tokens (b * n_grid); fallback at the missed pixels; zero]``
    and ``missed`` (m,), the distinct batch-flattened pixels the grid did not sample."""
    key = (kernel_size, spacing, id(anchors))
    plan = grid._plans.get(key)
    if plan is None or plan[0] is not anchors:
        h, w = grid.size
        ty, tx = _taps(kernel_size, anchors.device)
        y, x = (anchors // w)[..., None] + spacing * ty, (anchors % w)[..., None] + spacing * tx  # (b, n, k*k)
        valid = ((y >= 0) & (y < h) & (x >= 0) & (x < w)).reshape(-1)
        gidx = grid.global_index(y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).reshape(-1)
        rows = grid.inverse()[gidx]
        miss = valid & (rows < 0)
        missed, slot = torch.unique(gidx[miss], return_inverse=True)
        rows[miss] = grid.batch * grid.num + slot
        rows[~valid] = grid.batch * grid.num + missed.numel()
        plan = grid._plans[key] = (anchors, rows, missed)
    return plan[1], plan[2]


def _regular_taps(level_map, kernel_size, anchors, spacing):
    """:func:`gather_neighbours` without offsets: one index into the level's tokens, the fallback at the pixels it did
    not sample (computed there only) and a zero row (outside the image)."""
    rows, missed = _tap_plan(level_map.grid, kernel_size, anchors, spacing)
    b, n, c = level_map.tokens.shape
    parts = [level_map.tokens.reshape(b * n, c)]
    if missed.numel():
        if level_map.fallback is None:
            raise RuntimeError('a level without fallback was read at pixels it did not sample')
        parts.append(getattr(level_map.fallback, 'at', level_map.fallback)(missed).to(level_map.tokens.dtype))
    parts.append(level_map.tokens.new_zeros(1, c))
    return torch.cat(parts)[rows].view(b, anchors.shape[1], kernel_size * kernel_size, c)


def gather_neighbours(level_map, kernel_size, anchors=None, spacing=None, offsets=None):
    """The k x k neighbourhood of pixels, read from ``level_map``.

    Tap ``j`` of anchor pixel ``p`` reads ``p + spacing * (t_j + offset_j)`` (``t_j`` the regular tap, the offset in
    units of ``spacing``), bilinearly from the four surrounding points of the anchor's own lattice
    (``p + spacing * Z^2``) -- on a uniform lattice this is exactly a (deformable) convolution's sampling, including its
    gradients at integer offsets; outside the image reads zero.

    Args:
        level_map (LevelMap): Where to read.
        kernel_size (int): k.
        anchors (Tensor | None): (b, n) full-resolution pixels; default the map's own pixels.
        spacing (int | None): Default the map's grid spacing.
        offsets (Tensor | None): (b, n, k*k, 2) (dy, dx) per tap, or None for the regular taps.

    Returns:
        Tensor: (b, n, k*k, c).
    """
    grid = level_map.grid
    anchors = grid.flat if anchors is None else anchors
    spacing = grid.spacing if spacing is None else spacing
    w = grid.size[1]
    ay, ax = (anchors // w)[..., None], (anchors % w)[..., None]  # (b, n, 1)
    if offsets is None:
        return _regular_taps(level_map, kernel_size, anchors, spacing)
    ty, tx = _taps(kernel_size, anchors.device)
    fy = ty.to(offsets.dtype) + offsets[..., 0]  # (b, n, k*k) in lattice units
    fx = tx.to(offsets.dtype) + offsets[..., 1]
    y0, x0 = fy.detach().floor(), fx.detach().floor()
    ly, lx = fy - y0, fx - x0
    y0, x0 = y0.long(), x0.long()
    out = None
    for dy, wy in ((0, 1 - ly), (1, ly)):  # one gather per corner from the level's whole map (LevelMap.full)
        for dx, wx in ((0, 1 - lx), (1, lx)):
            term = level_map.read_pixels(ay + spacing * (y0 + dy), ax + spacing * (x0 + dx)) * (wy * wx)[..., None]
            out = term if out is None else out + term
    return out


def _tap_matmul(taps, weight, bias):
    """(b, n, k*k, c) taps x conv weight (c_out, c, k, k) -> (b, n, c_out), one matrix product without copying the
    taps (the small weight is laid out as the taps are: tap-major, then channels)."""
    out = taps.flatten(2) @ weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t()
    return out if bias is None else out + bias


class TokenConv(nn.Conv2d):
    """``nn.Conv2d(in, out, k, padding=k // 2)`` (parameters and checkpoints identical) applied to a level's tokens.

    ``forward(level_map)`` runs the conv at the level's own pixels; ``forward(level_map, anchors=grid)`` evaluates it at
    the pixels of a coarser grid ``grid`` (the stride-2 downsampling conv of a uniform encoder). Lattices take the
    dense path (``F.conv2d``), sampled grids gather their taps (:func:`gather_neighbours`).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, level_map, anchors=None):
        """Args: level_map (LevelMap); anchors (SampleGrid | None). Returns: (b, n_out, out_channels) tokens."""
        grid = level_map.grid
        target = grid if anchors is None else anchors
        if grid.lattice is not None and target.lattice is not None:
            stride = target.spacing // grid.spacing
            out = F.conv2d(level_map.dense(), self.weight, self.bias, stride, self.padding)
            return out.flatten(2).transpose(1, 2)
        k = self.kernel_size[0]
        taps = gather_neighbours(level_map, k, anchors=target.flat, spacing=grid.spacing)  # (b, n, k*k, c)
        return _tap_matmul(taps, self.weight, self.bias)


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
    taps = gather_neighbours(level_map, k, offsets=offsets) * kernel[..., None]  # (b, n, k*k, c)
    return _tap_matmul(taps, weight, bias)


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
    out = finer_tokens.reshape(b * n, c).to(dtype).index_put((rows, ), coarse_tokens.reshape(-1, c).to(dtype))
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
