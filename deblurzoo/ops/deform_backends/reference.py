"""Plain-op deformable convolution: bilinear im2col by gathers, then one matmul per weight group.

The reference of the 'pytorch' backend (:mod:`.pytorch`): autograd differentiates it, tracers and the ONNX exporter
record it op by op, and it runs on any device and dtype. It follows torchvision's sampling rules exactly (see
:func:`sample_columns`).
"""
import torch

# upper bound on the elements of one sampled-column tensor (c * kh * kw * h_out * w_out per image) built at once;
# batches are split into chunks below it
_MAX_COLUMN_ELEMENTS = 2**24


def sample_columns(x, offset, mask, kernel_size, stride, padding, dilation, offset_groups, out_size):
    """Bilinearly sample the deformed kernel taps of ``x`` (the im2col step of a deformable convolution).

    Sampling follows torchvision's rules: the tap of kernel point (i, j) at output (oy, ox) reads
    y = oy * stride_h - pad_h + i * dilation_h + offset_y, x likewise, from the four corners floor(y) + {0, 1} x
    floor(x) + {0, 1} with bilinear weights; corners outside [0, h-1] x [0, w-1] contribute zero (so a tap with
    y <= -1, y >= h, x <= -1 or x >= w reads 0). Autograd differentiates this directly: floor() is treated as a constant
    (zero gradient), which is torchvision's convention as well, also at integer positions and on the borders.

    Args:
        x (Tensor): (b, c, h, w).
        offset (Tensor): (b, 2 * g * kh * kw, h_out, w_out), (y, x) interleaved per kernel point, g offset groups.
        mask (Tensor | None): (b, g * kh * kw, h_out, w_out) or None.

    Returns:
        Tensor: (b, c * kh * kw, h_out * w_out), rows ordered (channel, kernel point) like a conv weight.
    """
    b, c, h, w = x.shape
    kh, kw = kernel_size
    k = kh * kw
    h_out, w_out = out_size
    g = offset_groups
    dtype, device = x.dtype, x.device

    # regular grid of sampling positions, without offsets
    tap_y = torch.arange(kh, device=device, dtype=dtype) * dilation[0]  # (kh, )
    tap_x = torch.arange(kw, device=device, dtype=dtype) * dilation[1]  # (kw, )
    out_y = torch.arange(h_out, device=device, dtype=dtype) * stride[0] - padding[0]  # (h_out, )
    out_x = torch.arange(w_out, device=device, dtype=dtype) * stride[1] - padding[1]  # (w_out, )
    ys = tap_y.view(kh, 1, 1, 1) + out_y.view(1, 1, h_out, 1)  # (kh, 1, h_out, 1)
    xs = tap_x.view(1, kw, 1, 1) + out_x.view(1, 1, 1, w_out)  # (1, kw, 1, w_out)
    base_y = ys.expand(kh, kw, h_out, 1).reshape(k, h_out, 1)  # (k, h_out, 1)
    base_x = xs.expand(kh, kw, 1, w_out).reshape(k, 1, w_out)  # (k, 1, w_out)

    offset = offset.view(b, g, k, 2, h_out, w_out)
    py = base_y + offset[:, :, :, 0]  # (b, g, k, h_out, w_out)
    px = base_x + offset[:, :, :, 1]  # (b, g, k, h_out, w_out)

    # the corner coordinates are piecewise constant in the offsets: no gradient flows through floor()
    y0 = py.detach().floor()
    x0 = px.detach().floor()
    ly = py - y0  # fractional parts, in [0, 1); they carry the offset gradients
    lx = px - x0

    xg = x.reshape(b, g, c // g, h * w)  # (b, g, c/g, h*w)
    cols = None
    for dy, wy in ((0, 1 - ly), (1, ly)):
        yc = y0 + dy
        valid_y = (yc >= 0) & (yc <= h - 1)
        for dx, wx in ((0, 1 - lx), (1, lx)):
            xc = x0 + dx
            valid = valid_y & (xc >= 0) & (xc <= w - 1)  # (b, g, k, h_out, w_out); False also for NaN positions
            index = yc.clamp(0, h - 1) * w + xc.clamp(0, w - 1)
            index = torch.where(valid, index, torch.zeros_like(index)).long().view(b, g, 1, k * h_out * w_out)
            values = xg.gather(3, index.expand(b, g, c // g, k * h_out * w_out))  # (b, g, c/g, k*h_out*w_out)
            weight = torch.where(valid, wy * wx, torch.zeros_like(wy))  # (b, g, k, h_out, w_out)
            if mask is not None:
                weight = weight * mask.view(b, g, k, h_out, w_out)
            term = values * weight.view(b, g, 1, k * h_out * w_out)
            cols = term if cols is None else cols + term
    return cols.view(b, c * k, h_out * w_out)


def deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask, groups, offset_groups, out_size):
    """Plain-op deformable convolution (autograd differentiates it; it traces and exports): sampled columns times
    the weight, per weight group, in batch chunks."""
    b, c = input.shape[:2]
    c_out, c_per_group, kh, kw = weight.shape
    h_out, w_out = out_size
    per_image = c * kh * kw * h_out * w_out
    chunk = max(1, _MAX_COLUMN_ELEMENTS // max(per_image, 1))
    weight_g = weight.reshape(groups, c_out // groups, c_per_group * kh * kw)  # (groups, c_out/groups, c/groups*k)

    outs = []
    for start in range(0, max(b, 1), chunk):
        sl = slice(start, start + chunk)
        cols = sample_columns(input[sl], offset[sl], None if mask is None else mask[sl], (kh, kw), stride, padding,
                               dilation, offset_groups, out_size)  # (n, c*k, h_out*w_out)
        n = cols.shape[0]
        cols = cols.view(n, groups, c_per_group * kh * kw, h_out * w_out)
        out = torch.matmul(weight_g, cols)  # (n, groups, c_out/groups, h_out*w_out)
        outs.append(out.reshape(n, c_out, h_out, w_out))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)  # (b, c_out, h_out, w_out)
    if bias is not None:
        out = out + bias.view(1, c_out, 1, 1)
    return out


# --------------------------------------------------------------------------------------------------------------------
# 'pytorch' backend, fast path: channels-last four-corner gather (embedding_bag) + GEMM, with a hand-written backward
# --------------------------------------------------------------------------------------------------------------------

# zero border of the channels-last gather table: 2 pixels on every side, so that positions clamped to [-2, h] x [-2, w]
