"""The 'pytorch' deformable-convolution backend: exact (torchvision's outputs and all five gradients), any device.

On float32 / float64 CPU tensors it runs a channels-last four-corner gather (``embedding_bag`` over a zero-bordered
copy of the input) followed by one GEMM per chunk of output rows, with a hand-written backward
(:class:`_DeformConv2dFunction`; not twice differentiable: differentiating its gradients raises, as with
torchvision). While tracing, exporting to ONNX or compiling, and on other devices or dtypes, it runs the plain-op
reference (:mod:`.reference`), which autograd differentiates and tracers record op by op. Either way a tap at a NaN or
infinite position reads 0, and integer positions and the borders (-1, h) follow torchvision exactly.
``python scripts/bench_deform.py`` times it against torchvision's kernel and a plain convolution.
"""
import torch
import torch.nn.functional as F

from . import reference

# column entries (output pixels * kh * kw * c) per block (per-sample arithmetic) and per chunk (gathers and GEMMs)
_BLOCK_ELEMENTS = 2**22
_CHUNK_ELEMENTS = 2**20
# zero border of the channels-last gather table: 2 pixels on every side, so that positions clamped to [-2, h] x [-2, w]
# have all four corners (floor(p) + {0, 1}) on real pixels or on zeros
_BORDER = 2
# on CPU, torch.sort uses a (much faster) radix sort for 1-D integer tensors of at least this many elements
_RADIX_SORT_MIN = 32768


def use_fast_path(*tensors):
    """Whether the hand-written autograd.Function may run: not while tracing, exporting or compiling (those need plain
    differentiable ops), and only for float32 / float64 CPU tensors of one dtype (the only ones it is tested and tuned
    for; on GPUs, 'auto' picks torchvision's kernel)."""
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling') and compiler.is_compiling():
        return False
    dtype, device = tensors[0].dtype, tensors[0].device
    return (dtype in (torch.float32, torch.float64) and device.type == 'cpu'
            and all(t is None or (t.dtype == dtype and t.device == device) for t in tensors))


def _split_rows(b0, b1, r0, r1, h_out, row_elements, limit):
    """Split the output rows [r0, r1) of the images [b0, b1) (several images only with all their rows) into pieces of
    whole rows of one image, or of whole images, with at most ``limit`` column entries where possible."""
    rows = max(1, limit // row_elements)
    if r1 - r0 == h_out and rows >= h_out:
        images = _balanced(b1 - b0, rows // h_out)
        return [(i, min(i + images, b1), 0, h_out) for i in range(b0, b1, images)]
    rows = _balanced(r1 - r0, rows)
    return [(i, i + 1, r, min(r + rows, r1)) for i in range(b0, b1) for r in range(r0, r1, rows)]


def _balanced(total, most):
    """The size of the fewest pieces of at most ``most`` that split ``total`` into (nearly) equal parts."""
    pieces = max(1, -(-total // most))
    return max(1, -(-total // pieces))


class _Plan:
    """Sizes, work split and constant tensors shared by the forward and backward passes of
    :class:`_DeformConv2dFunction`.

    Samples (one per output pixel, kernel point and offset group) are ordered (image, out row, out column, kernel
    point, offset group), so the gathered columns of a chunk, (n_samples, c / og), reshape without a copy to
    (images, pixels, kh * kw * c) with channels ordered (kernel point, channel) like ``weight.permute(0, 2, 3, 1)``.
    Per-sample quantities are contiguous (n, ) vectors, which elementwise ops handle fastest. The output is split in
    blocks of about _BLOCK_ELEMENTS column entries for the per-sample arithmetic (big enough for intra-op threads and
    for the radix sort), each split in chunks of about _CHUNK_ELEMENTS for the gathers and GEMMs (small enough to
    stay in cache).
    """

    def __init__(self, input, weight, offset_groups, stride, padding, dilation, out_size):
        b, c, h, w = input.shape
        c_out, _, kh, kw = weight.shape
        self.b, self.c, self.h, self.w = b, c, h, w
        self.c_out, self.k, self.og = c_out, kh * kw, offset_groups
        self.cg = c // offset_groups
        self.groups = c // weight.shape[1]
        self.h_out, self.w_out = out_size
        self.hp, self.wp = h + 2 * _BORDER, w + 2 * _BORDER  # padded table size
        device, dtype = input.device, input.dtype
        self.device = device
        self.index_dtype = torch.int32 if b * self.hp * self.wp * offset_groups < 2**31 else torch.int64
        self._bag_offsets = {}

        # base sampling positions of every (out row, out column, kernel point) as y and x planes
        # (2, 1, h_out, w_out, k, 1)
        oy = torch.arange(self.h_out, device=device, dtype=dtype) * stride[0] - padding[0]
        ox = torch.arange(self.w_out, device=device, dtype=dtype) * stride[1] - padding[1]
        ty = (torch.arange(kh, device=device, dtype=dtype) * dilation[0]).repeat_interleave(kw)  # (k, )
        tx = (torch.arange(kw, device=device, dtype=dtype) * dilation[1]).repeat(kh)  # (k, )
        by = (oy.view(-1, 1, 1) + ty.view(1, 1, -1)).expand(self.h_out, self.w_out, self.k)
        bx = (ox.view(1, -1, 1) + tx.view(1, 1, -1)).expand(self.h_out, self.w_out, self.k)
        self.base = torch.stack((by, bx)).view(2, 1, self.h_out, self.w_out, self.k, 1)
        # table row of a sample's (y0, x0) corner = image * hp * wp * og + (y0 + 2) * wp * og + (x0 + 2) * og + group
        self.step = self.wp * offset_groups  # rows from (y, x) to (y + 1, x)
        group_row = (torch.arange(b, device=device).view(b, 1, 1, 1, 1) * (self.hp * self.step) +
                     torch.arange(offset_groups, device=device).view(1, 1, 1, 1, -1) +
                     (_BORDER * self.step + _BORDER * offset_groups))
        self.group_row = group_row.to(self.index_dtype)  # (b, 1, 1, 1, og)
        self.shifts = (0, offset_groups, self.step, self.step + offset_groups)  # the 4 corners from (y0, x0)

        row_elements = self.w_out * self.k * c  # column entries of one output row
        self.samples_per_row = self.w_out * self.k * offset_groups
        self.blocks = [(block, _split_rows(*block, self.h_out, row_elements, _CHUNK_ELEMENTS))
                       for block in _split_rows(0, b, 0, self.h_out, self.h_out, row_elements, _BLOCK_ELEMENTS)]

    def bag_offsets(self, bags, size):
        """Start offsets of ``bags`` consecutive bags of ``size`` elements for embedding_bag (cached)."""
        cached = self._bag_offsets.get(size)
        if cached is None or cached.shape[0] < bags:
            cached = torch.arange(0, bags * size, size, device=self.device, dtype=self.index_dtype)
            self._bag_offsets[size] = cached
        return cached[:bags]

    def sample_range(self, block, chunk):
        """Samples [s0, s1) of ``chunk`` within ``block``."""
        rows = block[3] - block[2]
        s0 = ((chunk[0] - block[0]) * rows + chunk[2] - block[2]) * self.samples_per_row
        return s0, s0 + (chunk[1] - chunk[0]) * (chunk[3] - chunk[2]) * self.samples_per_row

    def table(self, input):
        """Channels-last copy of the input with a zero border of _BORDER pixels: (b * hp * wp * og, c / og) rows."""
        table = input.new_empty(self.b, self.hp, self.wp, self.c)
        table[:, :_BORDER].zero_()
        table[:, -_BORDER:].zero_()
        table[:, _BORDER:-_BORDER, :_BORDER].zero_()
        table[:, _BORDER:-_BORDER, -_BORDER:].zero_()
        table[:, _BORDER:-_BORDER, _BORDER:-_BORDER].copy_(input.permute(0, 2, 3, 1))
        return table.view(-1, self.cg)

    def samples(self, block, offset, mask):
        """Table rows and interpolation weights of the samples of one block.

        The tap of a sample at (y, x) (NaN and +-inf replaced by -2, then clamped to [-2, h] x [-2, w], which changes
        neither its value nor any gradient: all its corners read zeros before and after) reads the corners
        (y0, x0), (y0, x1), (y1, x0), (y1, x1) with y0 = floor(y), y1 = y0 + 1, x likewise, all on the table.

        Returns:
            tuple: the table row of the (y0, x0) corner (n, ); the fractional parts ly, lx (n, ) each; the mask (n, )
            or None.
        """
        b0, b1, r0, r1 = block
        nb, rows = b1 - b0, r1 - r0
        off = offset[b0:b1].view(nb, self.og, self.k, 2, self.h_out, self.w_out)[..., r0:r1, :]
        pos = torch.empty(2, nb, rows, self.w_out, self.k, self.og, device=offset.device, dtype=offset.dtype)
        torch.add(off.permute(3, 0, 4, 5, 2, 1), self.base[:, :, r0:r1], out=pos)  # (y, x) planes
        bound = -float(_BORDER)
        torch.nan_to_num_(pos, nan=bound, posinf=bound, neginf=bound)
        pos[0].clamp_(bound, self.h)
        pos[1].clamp_(bound, self.w)
        corner = pos.floor()
        frac = pos.sub_(corner).view(2, -1)
        corner = corner.to(self.index_dtype)
        row = torch.add(corner[1], corner[0], alpha=self.wp)  # y0 * wp + x0
        row = torch.add(self.group_row[b0:b1], row, alpha=self.og).view(-1)
        m = None
        if mask is not None:
            m = mask[b0:b1].view(nb, self.og, self.k, self.h_out, self.w_out)[..., r0:r1, :]
            m = m.permute(0, 3, 4, 2, 1).reshape(-1)
        return row, frac[0], frac[1], m

    def corners(self, row, order=(0, 1, 2, 3)):
        """Table rows (n, 4) of the corners (y0, x0), (y0, x1), (y1, x0), (y1, x1) (or in another ``order``) from
        those of (y0, x0)."""
        return torch.stack([row + self.shifts[j] if j else row for j in order], dim=1)


def _corner_weights(ly, lx, m=None):
    """Bilinear weights (n, 4) of the corners (y0, x0), (y0, x1), (y1, x0), (y1, x1), times the mask if given."""
    wy1 = ly if m is None else ly * m
    wy0 = (1 - ly) if m is None else m - wy1
    wx0 = 1 - lx
    return torch.stack((wy0 * wx0, wy0 * lx, wy1 * wx0, wy1 * lx), dim=1)


def _pair_weights(l):
    """(1 - l, l, 1 - l, l): (n, 4)."""
    weights = l.new_empty(l.shape[0], 4)
    torch.sub(1, l, out=weights[:, 0])
    weights[:, 1] = l
    weights[:, 2:] = weights[:, :2]
    return weights


def _gather(plan, table, index, weights, size=4):
    """Weighted sums of ``size`` table rows each, the rows and weights given (flattened) by ``index`` and ``weights``:
    (index.numel() / size, c / og)."""
    return F.embedding_bag(index.reshape(-1), table, plan.bag_offsets(index.numel() // size, size),
                           per_sample_weights=weights.reshape(-1), mode='sum')


def _dots(a, g, out):
    """Dot products of the rows of ``a`` (n, 2, d) with the rows of ``g``, given as (n, 1, d) or repeated (n, 2, d)
    (faster for small d), into ``out`` (n, 2). Overwrites ``a``."""
    torch.sum(a.mul_(g), dim=-1, out=out)


def _scatter(plan, grad_table, row, weights, grad_cols):
    """grad_table[corner j of row[i]] += weights[i, j] * grad_cols[i], written as gathers: sort the samples by row,
    then sum the contributions to every table row with embedding_bag, one corner at a time (the four corners of a
    sample are fixed shifts of its row, so one sort orders all four)."""
    n = row.shape[0]
    lo, hi = (int(v) for v in torch.aminmax(row))
    hi += 1
    keys = row - lo
    if _RADIX_SORT_MIN // 4 <= n < _RADIX_SORT_MIN and row.device.type == 'cpu':
        # pad with keys that sort last: a radix sort of _RADIX_SORT_MIN keys is faster than a comparison sort of n
        keys = torch.cat((keys, keys.new_full((_RADIX_SORT_MIN - n, ), hi - lo)))
    keys, order = torch.sort(keys)
    keys, order = keys[:n], order[:n]
    bounds = torch.zeros(hi - lo + 1, dtype=order.dtype, device=order.device)
    torch.cumsum(torch.bincount(keys, minlength=hi - lo), 0, out=bounds[1:])
    weights = weights.index_select(0, order).t().contiguous()  # (4, n), in sorted order
    for j, shift in enumerate(plan.shifts):
        grad = F.embedding_bag(order, grad_cols, bounds, per_sample_weights=weights[j], mode='sum',
                               include_last_offset=True)
        grad_table[lo + shift:hi + shift] += grad


def _weight_matrix(weight, groups):
    """The weight as the columns' GEMM operand: (c_out, kh * kw * c) for one group, else (groups, c_out / groups,
    kh * kw * c / groups), input channels ordered (kernel point, channel)."""
    c_out = weight.shape[0]
    w_cols = weight.permute(0, 2, 3, 1)
    if groups == 1:
        return w_cols.reshape(c_out, -1)
    return w_cols.reshape(groups, c_out // groups, -1)


def _weight_from_matrix(w_cols, shape):
    """Inverse of :func:`_weight_matrix`."""
    c_out, c_per_group, kh, kw = shape
    return w_cols.reshape(c_out, kh, kw, c_per_group).permute(0, 3, 1, 2).contiguous()


def _grouped_columns(plan, cols, nb, npix):
    """Columns (n, c / og) of ``nb`` images as (nb, groups, npix, kh * kw * c / groups) (a copy)."""
    groups = plan.groups
    cols = cols.view(nb, npix, plan.k, groups, plan.c // groups).permute(0, 3, 1, 2, 4)
    return cols.reshape(nb, groups, npix, -1)


def _columns_times_weight(plan, chunk, cols, w_cols, out):
    """Write the convolution of one chunk's columns into ``out`` (b, c_out, h_out, w_out)."""
    b0, b1, r0, r1 = chunk
    nb, npix = b1 - b0, (r1 - r0) * plan.w_out
    if plan.groups == 1:
        cols = cols.view(nb, npix, -1)
        for i in range(nb):
            torch.mm(w_cols, cols[i].t(), out=out[b0 + i, :, r0:r1].view(plan.c_out, npix))
    else:
        res = torch.matmul(w_cols, _grouped_columns(plan, cols, nb, npix).transpose(-1, -2))  # (nb, G, c_out/G, npix)
        out[b0:b1, :, r0:r1] = res.view(nb, plan.c_out, r1 - r0, plan.w_out)


def _grad_columns(plan, g_out, w_cols, out):
    """Write the gradient of one chunk's columns into ``out`` (n, c / og), from its output gradient ``g_out``
    (nb, c_out, npix)."""
    nb, _, npix = g_out.shape
    if plan.groups == 1:
        torch.matmul(g_out.transpose(1, 2), w_cols, out=out.view(nb, npix, -1))
        return
    groups = plan.groups
    g = g_out.view(nb, groups, plan.c_out // groups, npix).transpose(-1, -2)
    grad = torch.matmul(g, w_cols)  # (nb, G, npix, k * c / G)
    out.view(nb, npix, plan.k, groups, -1).copy_(grad.view(nb, groups, npix, plan.k, -1).permute(0, 2, 3, 1, 4))


def _accumulate_weight_grad(plan, g_out, cols, grad_w_cols):
    """grad_w_cols += g_out @ columns, for one chunk."""
    nb, _, npix = g_out.shape
    if plan.groups == 1:
        cols = cols.view(nb, npix, -1)
        for i in range(nb):
            grad_w_cols.addmm_(g_out[i], cols[i])
    else:
        groups = plan.groups
        cols = _grouped_columns(plan, cols, nb, npix)
        for i in range(nb):
            grad_w_cols.baddbmm_(g_out[i].view(groups, plan.c_out // groups, npix), cols[i])


class _NoDoubleBackward(torch.autograd.Function):
    """Identity on the gradients computed by :class:`_DeformConv2dFunction` with ``create_graph=True``, whose backward
    raises: the hand-written backward is not itself differentiable."""

    @staticmethod
    def forward(ctx, *grads):
        return tuple(g.view_as(g) for g in grads)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("deform_conv2d: the 'pytorch' backend does not support double backward (differentiating "
                           "its gradients, e.g. after backward(create_graph=True)); torchvision's does not either.")


class _DeformConv2dFunction(torch.autograd.Function):
    """Deformable convolution with a hand-written backward (see :func:`_deform_conv2d_pytorch`). Not twice
    differentiable: gradients computed with ``create_graph=True`` raise when differentiated."""

    @staticmethod
    def forward(ctx, input, offset, mask, weight, bias, stride, padding, dilation, offset_groups, out_size):
        plan = _Plan(input, weight, offset_groups, stride, padding, dilation, out_size)
        table = plan.table(input)
        w_cols = _weight_matrix(weight, plan.groups)
        out = input.new_empty(plan.b, plan.c_out, plan.h_out, plan.w_out)
        for block, chunks in plan.blocks:
            row, ly, lx, m = plan.samples(block, offset, mask)
            index, weights = plan.corners(row), _corner_weights(ly, lx, m)
            for chunk in chunks:
                s0, s1 = plan.sample_range(block, chunk)
                cols = _gather(plan, table, index[s0:s1], weights[s0:s1])
                _columns_times_weight(plan, chunk, cols, w_cols, out)
        if bias is not None:
            out += bias.view(1, -1, 1, 1)
        ctx.plan = plan
        ctx.has_mask, ctx.has_bias = mask is not None, bias is not None
        ctx.save_for_backward(table, offset, mask, weight)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        with torch.no_grad():
            grads = _DeformConv2dFunction._backward(ctx, grad_out)
        if not torch.is_grad_enabled():
            return grads
        # create_graph=True: return the gradients through a node that raises when they are differentiated (their
        # dependence on the inputs is not recorded, so they are made to require grad as once_differentiable does)
        present = [i for i, g in enumerate(grads) if g is not None]
        marked = _NoDoubleBackward.apply(*[grads[i].detach().requires_grad_() for i in present])
        grads = list(grads)
        for i, g in zip(present, marked):
            grads[i] = g
        return tuple(grads)

    @staticmethod
    def _backward(ctx, grad_out):
        plan = ctx.plan
        table, offset, mask, weight = ctx.saved_tensors
        need_input, need_offset, need_mask, need_weight, need_bias = ctx.needs_input_grad[:5]
        need_mask = need_mask and ctx.has_mask
        need_bias = need_bias and ctx.has_bias
        need_samples = need_offset or need_mask  # gradients of the sampling weights
        grad_input = grad_offset = grad_mask = grad_weight = grad_bias = None
        if need_bias:
            grad_bias = grad_out.sum((0, 2, 3))
        if not (need_input or need_samples or need_weight):
            return grad_input, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None, None, None

        grad_out = grad_out.contiguous()
        w_cols = _weight_matrix(weight, plan.groups)
        grad_table = torch.zeros_like(table) if need_input else None
        grad_w_cols = torch.zeros_like(w_cols) if need_weight else None
        if need_offset:
            grad_offset = torch.empty_like(offset)
            grad_offset_view = grad_offset.view(plan.b, plan.og, plan.k, 2, plan.h_out, plan.w_out)
        if need_mask:
            grad_mask = torch.empty_like(mask)
            grad_mask_view = grad_mask.view(plan.b, plan.og, plan.k, plan.h_out, plan.w_out)
        for block, chunks in plan.blocks:
            b0, b1, r0, r1 = block
            row, ly, lx, m = plan.samples(block, offset, mask)
            n = row.shape[0]
            index = weights = grad_cols = q = r = None
            if need_weight or need_input:
                index, weights = plan.corners(row), _corner_weights(ly, lx, m)
            if need_input or need_samples:
                grad_cols = table.new_empty(n, plan.cg)  # gradient of the sampled columns
            if need_samples:
                # the corner pairs (y0, x0), (y0, x1) and (y1, x0), (y1, x1) interpolated along x, and their dot
                # products q with the columns' gradient; likewise r along y (corners of the columns x0 and x1)
                if index is None:
                    index = plan.corners(row)
                wx, q = _pair_weights(lx), ly.new_empty(n, 2)
                if need_offset:
                    index_y, wy, r = plan.corners(row, (0, 2, 1, 3)), _pair_weights(ly), ly.new_empty(n, 2)
            for chunk in chunks:
                s0, s1 = plan.sample_range(block, chunk)
                c0, c1 = chunk[2], chunk[3]
                g_out = grad_out[chunk[0]:chunk[1], :, c0:c1].reshape(chunk[1] - chunk[0], plan.c_out, -1)
                if need_weight:
                    cols = _gather(plan, table, index[s0:s1], weights[s0:s1])
                    _accumulate_weight_grad(plan, g_out, cols, grad_w_cols)
                if grad_cols is None:
                    continue
                g_cols = grad_cols[s0:s1]
                _grad_columns(plan, g_out, w_cols, g_cols)
                if need_samples:
                    g_rows = g_cols.unsqueeze(1)
                    if plan.cg < 16:  # broadcasting over short rows is slow
                        g_rows = torch.cat((g_cols, g_cols), dim=1).view(-1, 2, plan.cg)
                    rows_x = _gather(plan, table, index[s0:s1], wx[s0:s1], size=2)
                    _dots(rows_x.view(s1 - s0, 2, -1), g_rows, q[s0:s1])
                    if need_offset:
                        cols_y = _gather(plan, table, index_y[s0:s1], wy[s0:s1], size=2)
                        _dots(cols_y.view(s1 - s0, 2, -1), g_rows, r[s0:s1])
            shape = (b1 - b0, r1 - r0, plan.w_out, plan.k, plan.og)
            if need_mask:  # the interpolated sample without the mask: (1 - ly) * q0 + ly * q1
                g_m = torch.lerp(q[:, 0], q[:, 1], ly)
                grad_mask_view[b0:b1, ..., r0:r1, :] = g_m.view(shape).permute(0, 4, 3, 1, 2)
            if need_offset:
                g_pos = torch.stack((q[:, 1] - q[:, 0], r[:, 1] - r[:, 0]))  # (2, n): d/d ly, d/d lx
                if m is not None:
                    g_pos.mul_(m)
                grad_offset_view[b0:b1, ..., r0:r1, :] = g_pos.view(2, *shape).permute(1, 5, 4, 0, 2, 3)
            if need_input:
                _scatter(plan, grad_table, row, weights, grad_cols)
        if need_input:
            inner = grad_table.view(plan.b, plan.hp, plan.wp, plan.c)[:, _BORDER:-_BORDER, _BORDER:-_BORDER]
            grad_input = inner.permute(0, 3, 1, 2).contiguous()
        if need_weight:
            grad_weight = _weight_from_matrix(grad_w_cols, weight.shape)
        return grad_input, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None, None, None


def deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask, groups, offset_groups, out_size):
    """The hand-written autograd.Function on float CPU tensors, else the plain-op reference.

    Forward, per chunk of output rows: the four corner rows of every sample (output pixel x kernel point x offset
    group) are gathered from a channels-last, zero-bordered copy of the input and summed with their bilinear weights
    times the mask (``embedding_bag``), giving columns (pixels, kh * kw * c) that one GEMM with the permuted weight
    turns into the output. Positions are clamped to [-2, h] x [-2, w] (NaN to -2) first, so that every corner lies on
    the table and no validity masks are needed; this changes no value and no gradient.

    Backward, recomputing the samples: the columns' gradient is grad_out^T @ weight; the weight gradient
    grad_out @ columns (columns gathered again); the offset and mask gradients come from dot products of the columns'
    gradient with the corner rows interpolated along x (rows y0 and y1) and along y (columns x0 and x1), exactly
    torchvision's right-sided derivative (floor() has zero gradient); the input gradient scatters the columns'
    gradient to the corners, done as gathers: samples are (radix) sorted by table row and ``embedding_bag`` sums the
    contributions of every row, once per corner.
    """
    if not use_fast_path(input, offset, weight, bias, mask):
        return reference.deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask, groups,
                                       offset_groups, out_size)
    return _DeformConv2dFunction.apply(input, offset.contiguous(), None if mask is None else mask.contiguous(),
                                       weight, bias, stride, padding, dilation, offset_groups, out_size)
