"""Token operations of adaptive sampling (paper 003, SAPHNet, Sec. 3.1): convolutions, the pixel-dependent filter and
the decoder's scatter on a level's tokens, reading through the level's table (``LevelMap`` in ``sample_grid.py``).

Operations (dense path on lattices, identical to the usual convolutions; gather path on sampled grids):
- :class:`TokenConv`: a ``k x k`` convolution at a level; its taps sit ``2**l`` full-resolution pixels apart, as on the
  uniform lattice; taps on unsampled pixels read the fallback.
- :class:`TokenConv` with ``anchors``: the stride-2 "downsampling" conv, evaluated only at the next level's pixels.
- :func:`scatter_to`: puts a coarser level's tokens back at their pixels within the finer level (the other pixels keep
  the encoder skip), before a merge conv -- the decoder's "upsampling".
- :func:`pixel_dependent_filter`: per-pixel kernels and offsets over a level's ``k x k`` neighbourhood (bilinear,
  zero outside the image); a modulated deformable conv on lattices.

Cost: pixels become table rows once (the regular taps' rows once per level, ``_tap_plan`` in ``sample_grid.py``; the
bilinear corners once per filter, :func:`_bilinear_plan`), and a conv is one gather of its columns (``index_select``,
or ``embedding_bag`` summing the weighted corners) times one matrix product, in chunks of anchors that stay in cache
when no gradient is needed (:func:`_gather_matmul`).
"""
import torch
import torch.nn.functional as F
from torch import nn

from deblurzoo.ops import deform_conv2d
from .sample_grid import _tap_plan, _taps

# gathered columns (anchors * k * k * c entries) per chunk when no gradient is needed: small enough to stay in cache
_CHUNK_ELEMENTS = 2**20

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
