"""MLFANet (Brehm et al., NTIRE 2020, stage 2): cosine-similarity weighting on hand-made features, a residual on the
centre frame, padding to 16, the single-frame ablation's inputs. The paper's levels and fusion are checked in
tests/conformance/test_ntire2020_paper.py."""
import pytest
import torch

import deblurzoo  # noqa: F401  (registers everything)
from deblurzoo.archs.mlfa_arch import MLFANet, cosine_weighted
from net_util import perturbed

TINY = dict(num_feat=4, num_level=2, num_block=1)


def test_cosine_weighting_on_hand_made_features():
    """Identical features weigh 1, opposite -1, orthogonal 0, whatever their lengths; features come out unit-length
    and scaled by their weight."""
    ref = torch.tensor([3.0, 4.0, 0.0])
    prev = torch.stack([ref * 2, -ref * 0.5, torch.tensor([0.0, 0.0, 7.0]), torch.tensor([4.0, 3.0, 0.0])])
    nxt = torch.stack([ref, ref, ref, ref])
    feats = torch.stack([prev, torch.stack([ref] * 4), nxt])  # (t=3, pixels=4, c=3)
    feats = feats.permute(0, 2, 1).reshape(1, 3, 3, 2, 2)  # (b, t, c, h, w): 4 pixels as a 2x2 map
    weighted, weights = cosine_weighted(feats, center=1)
    expected_prev = torch.tensor([1.0, -1.0, 0.0, 24 / 25])
    torch.testing.assert_close(weights[0, 0, 0].flatten(), expected_prev)
    torch.testing.assert_close(weights[0, 1, 0].flatten(), torch.ones(4))
    torch.testing.assert_close(weights[0, 2, 0].flatten(), torch.ones(4))
    unit = feats / feats.norm(dim=2, keepdim=True)
    torch.testing.assert_close(weighted, unit * weights)
    # an opposite feature, weighted by -1, points like the reference
    torch.testing.assert_close(weighted[0, 0, :, 0, 1], unit[0, 1, :, 0, 1])


def test_untrained_net_returns_the_centre_frame():
    net = MLFANet(**TINY)
    x = torch.rand(2, 3, 3, 21, 30)
    torch.testing.assert_close(net(x), x[:, 1])


def test_every_frame_and_every_level_reaches_the_output():
    net = perturbed(MLFANet(**TINY))
    x = torch.rand(1, 3, 3, 16, 16, requires_grad=True)
    net(x).sum().backward()
    assert all(x.grad[0, t].abs().sum() > 0 for t in range(3)), 'a neighbour frame does not reach the output'
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_encoder_weights_are_shared_across_frames():
    """One encoder for all frames: swapping frames t-1 and t+1 swaps their features, not the weights they meet."""
    net = perturbed(MLFANet(**TINY))
    seen = []
    net.encoder[1].register_forward_hook(lambda m, inp, out: seen.append(out.detach().clone()))
    x = torch.rand(1, 3, 3, 16, 16)
    net(x)
    net(x[:, [2, 1, 0]])
    torch.testing.assert_close(seen[0][[2, 1, 0]], seen[1])


@pytest.mark.parametrize('size', [(1, 1), (15, 17), (40, 24)])
def test_pads_to_16_and_crops_back(size):
    net = perturbed(MLFANet(num_feat=4, num_block=1))
    x = torch.rand(1, 3, 3, *size)
    out = net(x)
    assert out.shape == (1, 3, *size) and torch.isfinite(out).all()


def test_single_frame_ablation_takes_images_and_one_frame_clips():
    net = perturbed(MLFANet(num_frame=1, **TINY))
    assert net.center == 0 and net.fusions[0][0].in_channels == 4  # no t-1 / t+1 features
    x = torch.rand(2, 3, 20, 20)
    torch.testing.assert_close(net(x), net(x.unsqueeze(1)))


@pytest.mark.parametrize('kwargs,match', [(dict(num_frame=2), 'num_frame'), (dict(num_out_ch=1), 'num_out_ch')])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLFANet(**TINY, **kwargs)


def test_wrong_clip_is_named():
    with pytest.raises(ValueError, match=r'MLFANet expects a \(batch, 3, 3, height, width\) clip, got \(1, 5, 3'):
        MLFANet(**TINY)(torch.rand(1, 5, 3, 16, 16))
