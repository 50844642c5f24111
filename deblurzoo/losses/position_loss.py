"""Position loss of SVDN: Yuan, Su, Ma, "Spatially Variant Deconvolution Network with Optical Flow Guided Training",
CVPR 2020 (section 3.3, Eq. 6 and 10, Algorithm 1).

The sampling points of a deformable convolution are pulled towards the bi-directional optical flows of the pixel:
for every point, its position relative to the kernel centre (regular grid position + learned offset) is compared with
the two line segments from (0, 0) to the flow vectors towards the previous and the next frame; the smaller of the two
point-to-segment distances is penalised beyond a margin ``M``: ``max(d - M, 0)`` (the paper's Eq. 10 prints
``max(d, M)`` but states that only points farther than the margin are penalised), averaged over points and pixels.

Nothing here is specific to SVDN: any arch that returns torchvision-layout ``deform_conv2d`` offsets and any dataset
that provides ``(u_prev, v_prev, u_next, v_next)`` flows can use :class:`PositionLoss`.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY

__all__ = ['PositionLoss', 'point_to_segment_distance', 'resize_flow', 'sampling_positions']

_REDUCTIONS = ('none', 'mean', 'sum')


def _safe_sqrt(sq):
    """``sqrt`` whose gradient is 0 (not inf/NaN) where ``sq == 0``."""
    positive = sq > 0
    root = torch.sqrt(torch.where(positive, sq, torch.ones_like(sq)))
    return torch.where(positive, root, torch.zeros_like(sq))


def point_to_segment_distance(px, py, u, v):
    """Euclidean distance from points ``(px, py)`` to the line segments from ``(0, 0)`` to ``(u, v)``.

    The projection of the point onto the segment's line is clamped to the segment, ``t = clamp(<p, f> / |f|^2, 0, 1)``,
    and the distance is ``|p - t f|``. A zero-length segment (``u = v = 0``) gives the distance to the origin. Forward
    and backward are free of NaN everywhere (zero-length segments, points exactly on the segment); at distance 0 the
    gradient is 0.

    Args:
        px (Tensor): x coordinates of the points (any shape broadcastable with the others).
        py (Tensor): y coordinates of the points.
        u (Tensor): x components of the segments' end points.
        v (Tensor): y components of the segments' end points.

    Returns:
        Tensor: distances, of the broadcast shape of the inputs.
    """
    seg_sq = u * u + v * v  # |f|^2
    nonzero = seg_sq > 0
    dot = px * u + py * v  # <p, f>
    t = torch.where(nonzero, dot / torch.where(nonzero, seg_sq, torch.ones_like(seg_sq)), torch.zeros_like(dot))
    t = t.clamp(0, 1)
    dx = px - t * u
    dy = py - t * v
    return _safe_sqrt(dx * dx + dy * dy)


def resize_flow(flow, size):
    """Resize flow fields to ``size`` and rescale their vectors to the new pixel units.

    Shrinking uses area averaging (the mean flow over the covered pixels), enlarging bilinear interpolation. The x
    components (even channels) are scaled by ``w / W``, the y components (odd channels) by ``h / H``.

    Args:
        flow (Tensor): (B, 2*F, H, W) flows in pixels, channels ``(u_0, v_0, u_1, v_1, ...)``.
        size (tuple[int]): target ``(h, w)``.

    Returns:
        Tensor: (B, 2*F, h, w) flows in pixels of the target resolution.
    """
    h, w = int(size[0]), int(size[1])
    in_h, in_w = flow.shape[-2:]
    if (h, w) == (in_h, in_w):
        return flow
    if h <= in_h and w <= in_w:
        flow = F.interpolate(flow, size=(h, w), mode='area')  # (b, 2f, h, w)
    else:
        flow = F.interpolate(flow, size=(h, w), mode='bilinear', align_corners=False)  # (b, 2f, h, w)
    scale = flow.new_tensor([w / in_w, h / in_h]).repeat(flow.shape[1] // 2).view(1, -1, 1, 1)  # (1, 2f, 1, 1)
    return flow * scale


def sampling_positions(offset, kernel_size, dilation=1):
    """Positions of deformable-conv sampling points relative to the kernel centre.

    ``offset`` follows ``torchvision.ops.deform_conv2d``: for kernel point ``k = i * K + j`` channel ``2k`` is its y
    offset and ``2k + 1`` its x offset; ``G`` offset groups repeat this block of ``2 K^2`` channels. Each point's
    position is its grid position ``((i - (K - 1) / 2) * dilation, (j - (K - 1) / 2) * dilation)`` plus its offset.

    Args:
        offset (Tensor): (B, 2*G*K*K, h, w) offsets.
        kernel_size (int): K.
        dilation (int): dilation of the deformable conv. Default: 1.

    Returns:
        tuple[Tensor]: ``(px, py)``, each (B, G*K*K, h, w); point index ``g * K*K + k``.
    """
    b, c, h, w = offset.shape
    n = c // 2
    off = offset.reshape(b, n, 2, h, w)  # (b, n, 2, h, w), component 0 = y, 1 = x
    grid = (torch.arange(kernel_size, device=offset.device, dtype=offset.dtype) - (kernel_size - 1) / 2) * dilation
    grid_y = grid.view(kernel_size, 1).expand(kernel_size, kernel_size).reshape(-1)  # (K*K,), row i of k = i*K + j
    grid_x = grid.view(1, kernel_size).expand(kernel_size, kernel_size).reshape(-1)  # (K*K,), column j
    groups = n // (kernel_size * kernel_size)
    px = off[:, :, 1] + grid_x.repeat(groups).view(1, n, 1, 1)  # (b, n, h, w)
    py = off[:, :, 0] + grid_y.repeat(groups).view(1, n, 1, 1)  # (b, n, h, w)
    return px, py


@LOSS_REGISTRY.register()
class PositionLoss(nn.Module):
    """SVDN's position loss between deformable-conv sampling points and bi-directional optical flows.

    Args:
        loss_weight (float): weight of the loss (the paper's lambda_2). Default: 1e-4.
        margin (float): margin M in pixels of the offsets' resolution; only distances beyond it are penalised.
            Default: 1.0.
        kernel_size (int): kernel size K of the deformable conv whose offsets are supervised. Default: 5.
        dilation (int): dilation of that deformable conv (spacing of the regular grid). Default: 1.
        reduction (str): 'mean' (over batch, points and pixels), 'sum' or 'none' (returns (B, n, h, w)).
            Default: 'mean'.
    """

    def __init__(self, loss_weight=1e-4, margin=1.0, kernel_size=5, dilation=1, reduction='mean'):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'PositionLoss: unsupported reduction {reduction!r}; choose one of {_REDUCTIONS}')
        if int(kernel_size) != kernel_size or kernel_size < 1:
            raise ValueError(f'PositionLoss: kernel_size must be a positive integer, got {kernel_size!r}')
        if int(dilation) != dilation or dilation < 1:
            raise ValueError(f'PositionLoss: dilation must be a positive integer, got {dilation!r}')
        if margin < 0:
            raise ValueError(f'PositionLoss: margin must be >= 0, got {margin!r}')
        self.loss_weight = loss_weight
        self.margin = float(margin)
        self.kernel_size = int(kernel_size)
        self.dilation = int(dilation)
        self.reduction = reduction

    def extra_repr(self):
        return (f'loss_weight={self.loss_weight}, margin={self.margin}, kernel_size={self.kernel_size}, '
                f'dilation={self.dilation}, reduction={self.reduction!r}')

    def _check(self, offset, flow):
        kk2 = 2 * self.kernel_size * self.kernel_size
        if offset.dim() != 4:
            raise ValueError(f'PositionLoss: offset must be (B, 2*G*K*K, h, w), got shape {tuple(offset.shape)}')
        if flow.dim() != 4:
            raise ValueError(f'PositionLoss: flow must be (B, 4, H, W), got shape {tuple(flow.shape)}')
        c = offset.shape[1]
        if c == 0 or c % kk2 != 0:
            raise ValueError(f'PositionLoss: offset has {c} channels, expected 2*n with n = G*K*K sampling points, '
                             f'i.e. a multiple of {kk2} for kernel_size={self.kernel_size} (G offset groups); '
                             'check kernel_size against the deformable conv')
        if flow.shape[1] != 4:
            raise ValueError(f'PositionLoss: flow has {flow.shape[1]} channels, expected 4 '
                             f'(u_prev, v_prev, u_next, v_next); got shape {tuple(flow.shape)}')
        if offset.shape[0] != flow.shape[0]:
            raise ValueError(f'PositionLoss: batch sizes differ: offset has {offset.shape[0]}, flow {flow.shape[0]}')

    def forward(self, offset, flow):
        """
        Args:
            offset (Tensor): (B, 2*G*K*K, h, w) deformable-conv offsets (torchvision layout: y, x per point).
            flow (Tensor): (B, 4, H, W) flows in image pixels, channels (u_prev, v_prev, u_next, v_next);
                resized to (h, w) and rescaled here.

        Returns:
            Tensor: the weighted loss; a scalar, or (B, n, h, w) for reduction 'none'.
        """
        self._check(offset, flow)
        dtype = torch.promote_types(offset.dtype, torch.float32)  # distances in at least float32 (AMP)
        offset = offset.to(dtype)
        flow = resize_flow(flow.to(device=offset.device, dtype=dtype), offset.shape[-2:])  # (b, 4, h, w)
        px, py = sampling_positions(offset, self.kernel_size, self.dilation)  # (b, n, h, w) each
        d_prev = point_to_segment_distance(px, py, flow[:, 0:1], flow[:, 1:2])  # (b, n, h, w)
        d_next = point_to_segment_distance(px, py, flow[:, 2:3], flow[:, 3:4])  # (b, n, h, w)
        loss = F.relu(torch.minimum(d_prev, d_next) - self.margin)  # (b, n, h, w)
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
