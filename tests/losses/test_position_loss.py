import deblurzoo  # noqa
import math

import pytest
import torch
from torchvision.ops import deform_conv2d

from basicsr.losses import build_loss
from basicsr.utils.registry import LOSS_REGISTRY
from deblurzoo.losses.position_loss import PositionLoss, point_to_segment_distance, resize_flow, sampling_positions


def _t(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def _dist(px, py, u, v):
    return point_to_segment_distance(_t(px), _t(py), _t(u), _t(v)).item()


def _const_flow(b, h, w, u_prev, v_prev, u_next, v_next, dtype=torch.float64):
    flow = torch.tensor([u_prev, v_prev, u_next, v_next], dtype=dtype).view(1, 4, 1, 1)
    return flow.expand(b, 4, h, w).clone()  # (b, 4, h, w)


def _single_point_offset(dy, dx, dtype=torch.float64):
    """K = 1: one sampling point at (dx, dy) on a 1x1 map."""
    return torch.tensor([dy, dx], dtype=dtype).view(1, 2, 1, 1)


# ---------------------------------------------------------------- point_to_segment_distance, hand-computed values


def test_distance_zero_length_flow_is_distance_to_origin():
    assert _dist(3.0, 4.0, 0.0, 0.0) == pytest.approx(5.0)  # |(3, 4)| = 5
    assert _dist(-1.0, 0.0, 0.0, 0.0) == pytest.approx(1.0)
    assert _dist(0.0, 0.0, 0.0, 0.0) == 0.0


def test_distance_projection_beyond_segment_end():
    assert _dist(5.0, 0.0, 3.0, 0.0) == pytest.approx(2.0)  # nearest point is the end (3, 0)
    assert _dist(6.0, 4.0, 3.0, 0.0) == pytest.approx(5.0)  # |(6, 4) - (3, 0)| = |(3, 4)| = 5


def test_distance_projection_before_segment_start():
    assert _dist(-3.0, 4.0, 2.0, 0.0) == pytest.approx(5.0)  # nearest point is the origin: |(-3, 4)| = 5


def test_distance_point_beside_segment():
    assert _dist(1.0, 2.0, 4.0, 0.0) == pytest.approx(2.0)  # foot (1, 0) inside the segment
    assert _dist(2.0, 0.0, 0.0, 5.0) == pytest.approx(2.0)  # vertical segment (0,0)-(0,5), foot (0, 0)
    assert _dist(2.0, 3.0, 0.0, 5.0) == pytest.approx(2.0)  # foot (0, 3)
    # diagonal segment (0,0)-(4,4), point (4,0): foot (2,2), distance sqrt(8)
    assert _dist(4.0, 0.0, 4.0, 4.0) == pytest.approx(math.sqrt(8.0))


def test_distance_negative_direction():
    assert _dist(-1.0, 2.0, -4.0, 0.0) == pytest.approx(2.0)  # foot (-1, 0)
    assert _dist(1.0, 2.0, -4.0, 0.0) == pytest.approx(math.sqrt(5.0))  # behind the origin: |(1, 2)|
    assert _dist(0.0, -7.0, 0.0, -3.0) == pytest.approx(4.0)  # beyond the end (0, -3)
    assert _dist(1.0, -2.0, 0.0, -3.0) == pytest.approx(1.0)  # beside, foot (0, -2)


def test_distance_broadcasts():
    px = torch.tensor([[0.0], [1.0], [5.0]])  # (3, 1)
    py = torch.zeros(3, 1)
    u = torch.tensor([[0.0, 3.0]])  # (1, 2)
    v = torch.zeros(1, 2)
    d = point_to_segment_distance(px, py, u, v)
    assert d.shape == (3, 2)
    expected = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 2.0]])
    torch.testing.assert_close(d, expected)


# ---------------------------------------------------------------- the loss: margin, min over flows, grid, layout


def test_margin_hinge():
    loss = PositionLoss(loss_weight=1.0, margin=1.0, kernel_size=1)
    zero = _const_flow(1, 1, 1, 0, 0, 0, 0)
    # point (x=0.6, y=0.8): distance 1.0 = M -> 0
    assert loss(_single_point_offset(0.8, 0.6), zero).item() == pytest.approx(0.0)
    # distance 0.5 < M -> 0
    assert loss(_single_point_offset(0.0, 0.5), zero).item() == pytest.approx(0.0)
    # distance 1.5 = M + 0.5 -> 0.5
    assert loss(_single_point_offset(0.9, 1.2), zero).item() == pytest.approx(0.5)  # |(1.2, 0.9)| = 1.5
    # margin 0 -> the distance itself; loss_weight scales
    loss0 = PositionLoss(loss_weight=1e-4, margin=0.0, kernel_size=1)
    assert loss0(_single_point_offset(0.9, 1.2), zero).item() == pytest.approx(1.5e-4)


def test_min_over_both_flows():
    loss = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=1)
    # prev flow (-4, 0), next flow (0, 6); point (x=-2, y=1): 1 from prev (foot (-2, 0)), sqrt(4 + 1) from next
    flow = _const_flow(1, 1, 1, -4.0, 0.0, 0.0, 6.0)
    assert loss(_single_point_offset(1.0, -2.0), flow).item() == pytest.approx(1.0)
    # point (x=1, y=5): next gives 1 (foot (0, 5)), prev gives |(1, 5)| = sqrt(26)
    assert loss(_single_point_offset(5.0, 1.0), flow).item() == pytest.approx(1.0)
    # swapping prev and next changes nothing
    swapped = _const_flow(1, 1, 1, 0.0, 6.0, -4.0, 0.0)
    assert loss(_single_point_offset(1.0, -2.0), swapped).item() == pytest.approx(1.0)


def test_offset_channel_order_is_y_then_x():
    loss = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=1)
    flow = _const_flow(1, 1, 1, 0.0, 3.0, 0.0, 3.0)  # both segments (0,0)-(0,3), pointing down (+y)
    assert loss(_single_point_offset(3.0, 0.0), flow).item() == pytest.approx(0.0)  # channel 0 = y: on the segment
    assert loss(_single_point_offset(0.0, 3.0), flow).item() == pytest.approx(3.0)  # channel 1 = x: beside, 3 away


def test_grid_positions_central_row():
    """Zero offsets, 5x5 kernel, flows covering exactly the central row: point (i, j) is |i - 2| away."""
    loss = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=5, reduction='none')
    offset = torch.zeros(2, 50, 3, 4, dtype=torch.float64)
    flow = _const_flow(2, 3, 4, -2.0, 0.0, 2.0, 0.0)
    d = loss(offset, flow)
    assert d.shape == (2, 25, 3, 4)
    expected = torch.tensor([abs(i - 2) for i in range(5) for j in range(5)], dtype=torch.float64)  # k = i*5 + j
    torch.testing.assert_close(d, expected.view(1, 25, 1, 1).expand_as(d))
    # mean = (2 + 1 + 0 + 1 + 2) * 5 / 25 = 1.2
    assert PositionLoss(loss_weight=1.0, margin=0.0)(offset, flow).item() == pytest.approx(1.2)
    # sum = 6 * 5 per pixel, 2 * 3 * 4 pixels
    assert PositionLoss(loss_weight=1.0, margin=0.0, reduction='sum')(offset, flow).item() == pytest.approx(30 * 24)
    # with margin 1, only the outer rows count (2 - 1 = 1 each): 10 points of 25 -> 0.4
    assert PositionLoss(loss_weight=1.0, margin=1.0)(offset, flow).item() == pytest.approx(0.4)


def test_grid_positions_dilation():
    """Dilation 2: grid positions -4, -2, 0, 2, 4; flows cover the central column x=0, y in [-4, 4]."""
    loss = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=5, dilation=2, reduction='none')
    d = loss(torch.zeros(1, 50, 1, 1, dtype=torch.float64), _const_flow(1, 1, 1, 0.0, -4.0, 0.0, 4.0))
    expected = torch.tensor([2.0 * abs(j - 2) for i in range(5) for j in range(5)], dtype=torch.float64)
    torch.testing.assert_close(d.view(25), expected)


def test_offset_groups_repeat_the_grid():
    loss = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=3, reduction='none')
    offset = torch.zeros(1, 2 * 2 * 9, 2, 2, dtype=torch.float64)  # G = 2
    offset[:, 18 + 2 * 4 + 1] = 3.0  # group 1, centre point (k = 4), x offset +3
    d = loss(offset, _const_flow(1, 2, 2, 0, 0, 0, 0))
    assert d.shape == (1, 18, 2, 2)
    grid = torch.tensor([math.hypot(i - 1, j - 1) for i in range(3) for j in range(3)], dtype=torch.float64)
    torch.testing.assert_close(d[0, :9, 0, 0], grid)
    expected_g1 = grid.clone()
    expected_g1[4] = 3.0
    torch.testing.assert_close(d[0, 9:, 0, 0], expected_g1)


def test_positions_match_torchvision_deform_conv2d():
    """Sample coordinate ramps with deform_conv2d: the sampled value minus the pixel position is the point position."""
    torch.manual_seed(0)
    k, dil, h, w = 3, 2, 9, 10
    pad = (k - 1) // 2 * dil
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing='ij')
    image = torch.stack([xs, ys]).unsqueeze(0)  # (1, 2, h, w): channel 0 = x, channel 1 = y
    offset = (torch.rand(1, 2 * k * k, h, w, dtype=torch.float64) - 0.5) * 1.5  # |offset| < 0.75
    px, py = sampling_positions(offset, k, dil)  # (1, 9, h, w)
    margin = pad + 1  # interior pixels: every sampling point lies inside the image
    for point in range(k * k):
        weight = torch.zeros(2, 2, k, k, dtype=torch.float64)
        weight[0, 0].view(-1)[point] = 1.0
        weight[1, 1].view(-1)[point] = 1.0
        out = deform_conv2d(image, offset, weight, padding=pad, dilation=dil)  # (1, 2, h, w)
        inner = (slice(margin, h - margin), slice(margin, w - margin))
        torch.testing.assert_close(px[0, point][inner], (out[0, 0] - xs)[inner])
        torch.testing.assert_close(py[0, point][inner], (out[0, 1] - ys)[inner])


# ---------------------------------------------------------------- flow resizing


def test_flow_resized_and_scaled_to_half_resolution():
    flow = _const_flow(1, 8, 6, 4.0, 2.0, -4.0, 6.0)  # (1, 4, H=8, W=6)
    small = resize_flow(flow, (4, 3))
    assert small.shape == (1, 4, 4, 3)
    torch.testing.assert_close(small, _const_flow(1, 4, 3, 2.0, 1.0, -2.0, 3.0))
    # anisotropic: only the width halves -> only u halves
    torch.testing.assert_close(resize_flow(flow, (8, 3)), _const_flow(1, 8, 3, 2.0, 2.0, -2.0, 6.0))
    # area averaging of a non-constant field: 2x2 blocks of u = [[0, 4], [4, 8]] -> mean 4, halved -> 2
    field = torch.zeros(1, 4, 2, 2, dtype=torch.float64)
    field[0, 0] = torch.tensor([[0.0, 4.0], [4.0, 8.0]])
    assert resize_flow(field, (1, 1))[0, 0, 0, 0].item() == pytest.approx(2.0)
    # enlarging doubles the vectors
    torch.testing.assert_close(resize_flow(small, (8, 6)), flow)


def test_loss_uses_flows_at_offset_resolution():
    """Constant flow (4, 0) at HxW = 8x8 becomes (2, 0) at 4x4: a point at x = 2 lies on it, x = 3 is 1 away."""
    loss = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=1)
    flow = _const_flow(2, 8, 8, 4.0, 0.0, 4.0, 0.0)
    on_end = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
    on_end[:, 1] = 2.0
    assert loss(on_end, flow).item() == pytest.approx(0.0)
    beyond = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
    beyond[:, 1] = 3.0
    assert loss(beyond, flow).item() == pytest.approx(1.0)  # would be 0 without the rescaling


# ---------------------------------------------------------------- gradients


def test_gradcheck_float64():
    torch.manual_seed(1)
    loss = PositionLoss(loss_weight=0.5, margin=0.1, kernel_size=3)
    offset = (torch.randn(2, 18, 2, 1, dtype=torch.float64) * 2).requires_grad_()
    flow = torch.randn(2, 4, 4, 2, dtype=torch.float64) * 3  # resized to 2x1 inside
    assert torch.autograd.gradcheck(lambda o: loss(o, flow), (offset, ))
    none = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=3, reduction='none')
    assert torch.autograd.gradcheck(lambda o: none(o, flow).sum(), (offset, ))


def test_gradient_finite_for_zero_flows_and_points_on_segments():
    loss = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=5)
    # zero offsets: the centre point sits at the origin, which is on every segment, and the zero flow has length 0
    for flow in (torch.zeros(1, 4, 2, 2), _const_flow(1, 2, 2, -2.0, 0.0, 2.0, 0.0, dtype=torch.float32)):
        offset = torch.zeros(1, 50, 2, 2, requires_grad=True)
        value = loss(offset, flow)
        value.backward()
        assert torch.isfinite(value)
        assert torch.isfinite(offset.grad).all()
    # points exactly on the segment interior and at its end, and a zero-length next flow
    flow = _const_flow(1, 1, 1, 4.0, 0.0, 0.0, 0.0)
    for dx in (2.0, 4.0, 0.0):
        offset = torch.tensor([0.0, dx], dtype=torch.float64).view(1, 2, 1, 1).requires_grad_()
        PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=1)(offset, flow).backward()
        assert torch.isfinite(offset.grad).all()
        assert offset.grad.abs().max().item() == 0.0  # distance 0 is the minimum: zero (sub)gradient


def test_distance_gradient_points_away_from_segment():
    px = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    py = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    point_to_segment_distance(px, py, _t(4.0), _t(0.0)).sum().backward()
    assert px.grad.item() == pytest.approx(0.0)  # beside the segment: only y matters
    assert py.grad.item() == pytest.approx(1.0)
    # points exactly on the segment (interior, end, origin) and a zero-length segment: finite, zero gradient
    px = torch.tensor([2.0, 4.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    py = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    d = point_to_segment_distance(px, py, _t(4.0, 4.0, 4.0, 0.0), _t(0.0, 0.0, 0.0, 0.0))
    torch.testing.assert_close(d, torch.zeros(4, dtype=torch.float64))
    d.sum().backward()
    assert torch.isfinite(px.grad).all() and torch.isfinite(py.grad).all()
    assert px.grad.abs().max().item() == 0.0 and py.grad.abs().max().item() == 0.0
    # gradient with respect to a zero-length flow is finite as well
    u = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    v = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    point_to_segment_distance(_t(1.0), _t(1.0), u, v).sum().backward()
    assert torch.isfinite(u.grad).all() and torch.isfinite(v.grad).all()


def test_half_precision_offsets_computed_in_float32():
    loss = PositionLoss(loss_weight=1.0, margin=0.0, kernel_size=1)
    offset = torch.tensor([0.0, 5.0]).view(1, 2, 1, 1).half()
    value = loss(offset, _const_flow(1, 1, 1, 3.0, 0.0, 3.0, 0.0, dtype=torch.float16))
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(2.0)


# ---------------------------------------------------------------- validation and registry


def test_shape_errors():
    loss = PositionLoss(kernel_size=5)
    flow = torch.zeros(2, 4, 8, 8)
    with pytest.raises(ValueError, match=r'offset has 18 channels.*multiple of 50.*kernel_size=5'):
        loss(torch.zeros(2, 18, 4, 4), flow)
    with pytest.raises(ValueError, match=r'offset has 0 channels'):
        loss(torch.zeros(2, 0, 4, 4), flow)
    with pytest.raises(ValueError, match=r'flow has 2 channels, expected 4'):
        loss(torch.zeros(2, 50, 4, 4), torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match=r'batch sizes differ: offset has 2, flow 3'):
        loss(torch.zeros(2, 50, 4, 4), torch.zeros(3, 4, 8, 8))
    with pytest.raises(ValueError, match=r'offset must be \(B, 2\*G\*K\*K, h, w\)'):
        loss(torch.zeros(50, 4, 4), flow)
    with pytest.raises(ValueError, match=r'flow must be \(B, 4, H, W\)'):
        loss(torch.zeros(2, 50, 4, 4), torch.zeros(2, 8, 8, 4, 1))
    assert loss(torch.zeros(2, 100, 4, 4), flow).shape == ()  # 2 offset groups are fine


def test_argument_errors():
    with pytest.raises(ValueError, match='reduction'):
        PositionLoss(reduction='avg')
    with pytest.raises(ValueError, match='kernel_size'):
        PositionLoss(kernel_size=0)
    with pytest.raises(ValueError, match='dilation'):
        PositionLoss(dilation=0)
    with pytest.raises(ValueError, match='margin'):
        PositionLoss(margin=-1.0)


def test_registered_and_buildable():
    assert LOSS_REGISTRY.get('PositionLoss') is PositionLoss
    loss = build_loss({'type': 'PositionLoss', 'loss_weight': 1e-4, 'margin': 1.0})
    assert isinstance(loss, PositionLoss)
    assert (loss.loss_weight, loss.margin, loss.kernel_size, loss.dilation, loss.reduction) == (1e-4, 1.0, 5, 1, 'mean')
