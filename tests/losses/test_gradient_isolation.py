"""Every loss deblurzoo registers trains only what its docstring says it may train.

For each loss in BasicSR's LOSS_REGISTRY that comes from deblurzoo's modules, a case below builds the tiny network it
trains in practice, runs a training forward, computes that loss alone and back-propagates it: every parameter outside
the loss's declared set must get a zero (or no) gradient, and some parameter inside it a non-zero one (so the case
cannot pass by training nothing). A newly registered loss without a case fails ``test_every_loss_declares_a_case``.

- ``VGGPerceptualLoss``: the VGG16 is a frozen feature extractor; only the restoring network learns from it.
- ``PositionLoss`` (SVDN, paper 001 Sec. 3.3): it sees DCN1's sampling offsets only, so only what feeds them learns:
  the backbone (the blur feature) and the offset predictor ``conv_ow1``; not the deformable convs, DCN2's offset
  branch or the head.
- ``AdaptiveSamplingRewardLoss`` (SAPHNet, paper 003 Eq. 6): only the pixel samplers' parameters.

Each case was checked to fail when its isolation is broken (VGG parameters left trainable; DCN2's offsets returned
for the position loss; the reward loss fails on samplers fed undetached features).
"""

import pytest
import torch

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.utils.registry import LOSS_REGISTRY
from deblurzoo.losses.perceptual_loss import VGGPerceptualLoss
from deblurzoo.losses.position_loss import PositionLoss
from deblurzoo.losses.reward_loss import AdaptiveSamplingRewardLoss
from net_util import perturbed


def deblurzoo_losses():
    """Names of the losses deblurzoo registers (read from the registry, so a new loss is picked up)."""
    return sorted(name for name, cls in LOSS_REGISTRY._obj_map.items() if cls.__module__.startswith('deblurzoo.'))


def _perceptual():
    torch.manual_seed(0)
    net = perturbed(build_network(dict(type='SVDN', num_feat=8, num_conv=1, deform=False)), scale=0.05).train()
    loss_fn = VGGPerceptualLoss(layer='relu2_2', pretrained=False)
    x, gt = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    loss = loss_fn(net(x), gt)
    params = {f'net.{n}': p for n, p in net.named_parameters()}
    params.update({f'loss.{n}': p for n, p in loss_fn.named_parameters()})
    return loss, params, lambda name: name.startswith('net.')


def _position():
    torch.manual_seed(0)
    net = perturbed(build_network(dict(type='SVDN', num_feat=8, num_conv=1))).train()
    _, aux = net(torch.rand(1, 3, 16, 16), return_aux=True)
    offset = aux['offsets']
    flow = 3 * torch.randn(1, 4, 16, 16)
    loss = PositionLoss(loss_weight=1.0, margin=0.0)(offset, flow)
    feeds_offsets = ('backbone.', 'neck.conv_ow1.')  # DCN1's offsets = conv_ow1(blur feature of the backbone)
    return loss, dict(net.named_parameters()), lambda name: name.startswith(feeds_offsets)


def _reward():
    torch.manual_seed(0)
    net = build_network({'type': 'SAPHNet', 'num_feat': 4, 'num_block': (1, 1, 1), 'sampler_feat': 4})
    net = perturbed(net, scale=0.05).train()
    gt = torch.rand(1, 3, 16, 16)
    out, aux = net(torch.rand(1, 3, 16, 16), policy='sample', return_aux=True)
    outputs = list(aux['stage_outputs']) + [out]
    loss_fn = AdaptiveSamplingRewardLoss(baseline='none')
    sampling = aux['sampling']
    assert sampling, 'SAPHNet sampled no stage adaptively'
    loss = sum(loss_fn(r['log_prob'], outputs, gt, r['num_selected'], r['budget'], selected=r['selected'])
               for r in sampling)
    return loss, dict(net.named_parameters()), lambda name: name.startswith('samplers.')


# loss name -> case: () -> (loss, {parameter name: parameter}, may_train(name) -> bool)
CASES = {
    'VGGPerceptualLoss': _perceptual,
    'PositionLoss': _position,
    'AdaptiveSamplingRewardLoss': _reward,
}


@pytest.mark.parametrize('name', deblurzoo_losses())
def test_every_loss_declares_a_case(name):
    assert name in CASES, (f'{name} is registered by deblurzoo but declares no gradient-isolation case: add one to '
                           f'CASES in {__file__} saying which parameters it may train')


@pytest.mark.parametrize('name', sorted(CASES))
def test_loss_trains_only_what_it_may(name):
    loss, params, may_train = CASES[name]()
    assert all(p.grad is None for p in params.values())
    loss.backward()
    touched = {n for n, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0}
    wrong = sorted(n for n in touched if not may_train(n))
    assert not wrong, f'{name} sends gradient into {len(wrong)} parameters it must not train: {wrong[:8]}...'
    assert any(may_train(n) for n in touched), f'{name} trains none of the parameters it is meant to train'


def test_cases_name_existing_losses():
    assert set(CASES) <= set(deblurzoo_losses()), sorted(set(CASES) - set(deblurzoo_losses()))
