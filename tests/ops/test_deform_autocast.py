"""The deformable convolution under autocast (mixed-precision training): every backend runs it in float32, so the
result equals the float32 op on the same (already rounded) inputs, and gradients reach low-precision inputs."""
import pytest
import torch

from deblurzoo import ops

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('backend', ['torchvision', 'pytorch'])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_runs_in_float32(device, backend, dtype):
    torch.manual_seed(0)
    m = ops.ModulatedDeformConvPack(4, 6, 3, padding=1, backend=backend).to(device)
    torch.nn.init.normal_(m.conv_offset.weight, std=0.3)  # offsets off the grid: bilinear sampling is exercised
    x = torch.randn(2, 4, 9, 11, device=device).to(dtype).requires_grad_()  # what an autocast layer hands on
    with torch.autocast(device, dtype=dtype):
        out = m(x)
    assert out.dtype == torch.float32
    out.square().mean().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())

    x32 = x.detach().float()
    with torch.autocast(device, dtype=dtype):  # the offset conv runs in low precision in both
        offset, mask = m._offset_mask(x32.to(dtype))
    expected = ops.deform_conv2d(x32, offset.float(), m.weight, m.bias, 1, 1, 1, mask.float())
    torch.testing.assert_close(out.detach(), expected.detach(), rtol=1e-5, atol=1e-5)
