"""The REINFORCE loss of the pixel samplers (paper 003, Eqs. 5-7): reward, baselines, gradient sign, and a toy problem
where a probability head must learn to pick the pixels with the largest error."""
import pytest
import torch

from deblurzoo.archs.adaptive_sampling import PixelSampler
from deblurzoo.losses.reward_loss import AdaptiveSamplingRewardLoss


def test_reward_is_pixelwise_l1_over_stages_minus_the_budget_penalty():
    loss = AdaptiveSamplingRewardLoss(lambda_pixel=2.0, lambda_budget=0.5, baseline='none')
    gt = torch.zeros(2, 3, 2, 2)
    out1 = torch.full((2, 3, 2, 2), 0.1)
    out2 = torch.full((2, 3, 2, 2), 0.3)
    reward = loss.reward([out1, out2], gt, torch.tensor([5, 3]), torch.tensor([4, 4]))
    torch.testing.assert_close(reward[0], torch.full((1, 2, 2), -2.0 * 0.4 - 0.5))  # over budget
    torch.testing.assert_close(reward[1], torch.full((1, 2, 2), -2.0 * 0.4))
    # with the drawn decisions, only the pixels that selected themselves pay for exceeding the budget
    selected = torch.tensor([[1., 0.], [1., 1.]]).expand(2, 1, 2, 2)
    reward = loss.reward([out1, out2], gt, torch.tensor([5, 3]), torch.tensor([4, 4]), selected)
    torch.testing.assert_close(reward[0, 0], torch.tensor([[-1.3, -0.8], [-1.3, -1.3]]))
    torch.testing.assert_close(reward[1, 0], torch.full((2, 2), -0.8))


def test_image_wide_budget_penalty_is_the_literal_form():
    loss = AdaptiveSamplingRewardLoss(lambda_pixel=2.0, lambda_budget=0.5, baseline='none', budget_penalty='image')
    gt, out = torch.zeros(2, 3, 2, 2), torch.full((2, 3, 2, 2), 0.1)
    selected = torch.tensor([[1., 0.], [1., 1.]]).expand(2, 1, 2, 2)
    reward = loss.reward(out, gt, torch.tensor([5, 3]), torch.tensor([4, 4]), selected)
    torch.testing.assert_close(reward[0], torch.full((1, 2, 2), -0.2 - 0.5))  # every pixel pays, drawn or not
    torch.testing.assert_close(reward[1], torch.full((1, 2, 2), -0.2))
    with pytest.raises(ValueError, match='budget_penalty'):
        AdaptiveSamplingRewardLoss(budget_penalty='all')


def test_image_wide_budget_penalty_has_a_nonzero_expected_gradient():
    """Two pixels, budget 1: the image pays lambda when both are drawn. The exact expectation of the REINFORCE
    gradient, enumerated over the four outcomes, is lambda * p_i * (1 - p_i) * p_j / 2 for pixel i: not zero (the
    penalty depends on the pixel's own draw)."""
    lam = 0.5
    logit = torch.tensor([0.3, -0.2]).view(1, 1, 1, 2).requires_grad_()
    p = torch.sigmoid(logit.detach()).flatten()
    loss_fn = AdaptiveSamplingRewardLoss(lambda_pixel=0.0, lambda_budget=lam, baseline='none', budget_penalty='image')
    zero = torch.zeros(1, 1, 1, 2)
    expected_loss = 0
    for a1 in (0., 1.):
        for a2 in (0., 1.):
            drawn = torch.tensor([a1, a2]).view(1, 1, 1, 2)
            prob = (p[0] if a1 else 1 - p[0]) * (p[1] if a2 else 1 - p[1])
            log_prob = -torch.nn.functional.binary_cross_entropy_with_logits(logit, drawn, reduction='none')
            expected_loss = expected_loss + prob * loss_fn(log_prob, zero, zero, torch.tensor([int(a1 + a2)]),
                                                           torch.tensor([1]))
    expected_loss.backward()
    torch.testing.assert_close(logit.grad.flatten(), lam * p * (1 - p) * p.flip(0) / 2)
    assert (logit.grad > 0).all(), 'the penalty lowers both probabilities'


def test_gradient_sign_raises_the_probability_of_better_than_baseline_decisions():
    """A drawn pixel whose reward beats the baseline gets a larger probability; an undrawn one that would have been
    better drawn (its reward is below the baseline) as well; the deblurring outputs get no gradient."""
    logit = torch.zeros(1, 1, 1, 2, requires_grad=True)
    drawn = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    log_prob = -torch.nn.functional.binary_cross_entropy_with_logits(logit, drawn, reduction='none')
    gt = torch.zeros(1, 1, 1, 2)
    out = torch.tensor([0.0, 0.5]).view(1, 1, 1, 2).requires_grad_()  # pixel 0 fixed, pixel 1 left with error 0.5
    greedy = torch.tensor([0.2, 0.0]).view(1, 1, 1, 2)  # the greedy choice fixed pixel 1 instead
    loss = AdaptiveSamplingRewardLoss(baseline='greedy')(log_prob, out, gt, baseline_outputs=greedy)
    loss.backward()
    assert logit.grad[0, 0, 0, 0] < 0, 'drawing pixel 0 paid off: its logit must go up'
    assert logit.grad[0, 0, 0, 1] < 0, 'not drawing pixel 1 cost reward: its logit must go up'
    assert out.grad is None or out.grad.abs().sum() == 0


def test_greedy_baseline_is_required_and_names_itself():
    with pytest.raises(ValueError, match='baseline_outputs'):
        AdaptiveSamplingRewardLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="baseline must be one of"):
        AdaptiveSamplingRewardLoss(baseline='critic')


@pytest.mark.parametrize('baseline,steps', [('greedy', 250), ('mean', 400)])
def test_head_learns_to_pick_the_pixels_with_the_largest_error(baseline, steps):
    """Toy environment: a quarter of the pixels are hard (large error, like a moving object's blur), the rest nearly
    restored; processing a pixel removes its error. The head sees the error among noise channels and, trained only
    through the REINFORCE loss, learns within a few hundred steps to sample the hard pixels -- and to draw about the
    budget's worth of pixels (the budget penalty). The batch-mean baseline is noisier than the greedy one and needs more
    steps.

    One CPU thread: the sums' order depends on the thread count, a REINFORCE run's draws follow every rounding, and with
    the noisier mean baseline one seeded run can take hundreds of steps longer on two threads than on one; pinned, the
    run is the same on every machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _learn_to_pick_hard_pixels(baseline, steps)
    finally:
        torch.set_num_threads(threads)


def _learn_to_pick_hard_pixels(baseline, steps):
    torch.manual_seed(0)
    size, batch = 16, 4
    sampler = PixelSampler(3, 8, num_levels=2)  # level 1: a quarter of the pixels
    optimizer = torch.optim.Adam(sampler.parameters(), lr=1e-2)
    loss_fn = AdaptiveSamplingRewardLoss(baseline=baseline)

    def episode():
        hard = torch.rand(batch, size * size).argsort(1) < size * size // 4
        error = 0.1 * torch.rand(batch, size * size) + hard * (0.4 + 0.5 * torch.rand(batch, size * size))
        error = error.view(batch, 1, size, size)
        return hard, error, torch.cat([error, torch.randn(batch, 2, size, size)], dim=1)

    def overlap(hard, grids):
        chosen = torch.zeros_like(hard).scatter_(1, grids[0].flat, True)
        return (chosen & hard).sum().item() / hard.sum().item()

    hard, error, feat = episode()
    before = overlap(hard, sampler(feat, 'greedy')[0])
    for _ in range(steps):
        hard, error, feat = episode()
        grids, info = sampler(feat, 'sample')
        out = error * (1 - grids[0].mask())  # processed pixels are restored
        with torch.no_grad():
            greedy = error * (1 - sampler(feat, 'greedy')[0][0].mask())
        loss = loss_fn(info['log_prob'], out, torch.zeros_like(error), info['num_selected'], info['budget'],
                       baseline_outputs=greedy, selected=info['selected'])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hard, error, feat = episode()
    grids, info = sampler(feat, 'sample')
    after = overlap(hard, sampler(feat, 'greedy')[0])
    assert before < 0.5, before  # chance is about 0.25
    assert after > 0.9, f'overlap of the greedy choice with the hard pixels {before:.2f} -> {after:.2f}'
    drawn = info['num_selected'].float().mean().item() / info['budget'][0].item()
    assert 0.8 < drawn < 1.25, f'the policy draws {drawn:.2f} x the budget'


@pytest.mark.parametrize('arch', ['SAPHNet', 'DMPHN'])
def test_reward_loss_alone_trains_only_the_samplers(arch):
    """Eq. 6 updates the sampler's parameters only: backward of the reward loss alone leaves every other parameter
    without gradient (the sampler's input features are detached) and reaches every sampler parameter."""
    from basicsr.archs import build_network
    torch.manual_seed(0)
    net = build_network({'type': arch, 'num_feat': 4, 'num_block': [1, 1, 1], 'sampler_feat': 4}).train()
    x, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    out, aux = net(x, policy='sample', return_aux=True)
    loss_fn = AdaptiveSamplingRewardLoss(baseline='none')
    loss = sum(loss_fn(rec['log_prob'], out, gt, rec['num_selected'], rec['budget'], selected=rec['selected'])
               for rec in aux['sampling'])
    loss.backward()
    for name, param in net.named_parameters():
        grad = param.grad
        if name.startswith('samplers.'):
            assert grad is not None and grad.abs().sum() > 0, f'{name}: sampler parameter without gradient'
        else:
            assert grad is None or grad.abs().sum() == 0, f'{name}: the reward loss reached a non-sampler parameter'
