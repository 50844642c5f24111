"""SVDN: the offsets it returns for the position loss, the identity start, YAML keys and bad input. The paper's size
and Table 2 switches are checked in tests/conformance/test_svdn_paper.py."""
import pytest
import torch

import deblurzoo  # noqa: F401
from basicsr.archs import build_network
from deblurzoo.archs.svdn_arch import SVDN


def test_aux_returns_dcn1_offsets_at_half_resolution():
    net = SVDN(num_feat=8, num_conv=1).train()
    assert torch.is_tensor(net(torch.rand(1, 3, 16, 16)))  # the image alone unless aux is asked for
    out, aux = net(torch.rand(2, 3, 37, 53), return_aux=True)
    offset = aux['offsets']
    assert out.shape == (2, 3, 37, 53)
    assert offset.shape == (2, 2 * 25, 19, 27)  # 25 sampling points of the 5x5 DCN1, (dy, dx) each
    assert torch.count_nonzero(offset) == 0  # offset predictors start at the regular grid
    net.eval()
    assert torch.is_tensor(net(torch.rand(1, 3, 16, 16)))


def test_starts_as_identity():
    x = torch.rand(1, 3, 21, 30)
    assert torch.equal(SVDN(num_feat=8, num_conv=1).eval()(x), x)


def test_builds_from_yaml_keys_and_rejects_bad_width():
    net = build_network({'type': 'SVDN', 'num_feat': 8, 'num_conv': 1, 'dcn_backend': 'torchvision'})
    assert net.neck.dcn1.backend == 'torchvision'
    with pytest.raises(ValueError, match='num_out_ch'):
        SVDN(num_out_ch=1)
    with pytest.raises(ValueError, match=r'SVDN expects a \(batch, 3, height, width\) tensor'):
        SVDN(num_feat=8, num_conv=1)(torch.rand(3, 16, 16))
