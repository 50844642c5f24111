"""The policy-gradient (REINFORCE) loss that trains SAPHNet's pixel samplers (paper 003, Eqs. 5-7).

Each pixel of the probability map is an agent (all share the head's weights) that decides "hard to restore: sample
me". Its reward is pixelwise: ``r = -lambda1 * sum over the stage outputs of |output - gt|`` at that pixel (mean over
channels), minus ``lambda2`` when the policy drew more pixels than the budget (Eq. 5).

Who pays the budget penalty (``budget_penalty``):
- ``'image'``: every pixel of an image that drew too many, as Eq. 5 is written. Its policy gradient is not zero -- the
  penalty depends on every pixel's draw through the count -- but it is small and noisy: a pixel's draw changes the
  count by one, and its credit is the image's whole indicator, shared by all H x W agents.
- ``'drawn'`` (default, a design choice of ours): only the pixels that drew themselves pay it. Each drawn pixel then
  gets a direct signal "drawing cost lambda2", which keeps the number drawn near the budget (the image-wide form lets
  the policy drift towards drawing every pixel).

The loss is the REINFORCE surrogate ``-(r - b) * log p(decisions)``, averaged over pixels; the advantage ``r - b`` is
a constant (no gradient reaches the deblurring network through it) and the sampler computes its probabilities from
detached features, so only the sampler learns from this loss (Eq. 6), through the log-probability. Baselines ``b``
reduce the variance: ``'greedy'`` the reward of the top-N choice (self-critical, computed by the training model from a
second forward), ``'mean'`` the batch's mean reward per pixel position, or ``'none'``.
"""
import torch
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

BASELINES = ('greedy', 'mean', 'none')
BUDGET_PENALTIES = ('drawn', 'image')


def reward_map(outputs, target, lambda_pixel):
    """(b, 1, H, W) ``-lambda_pixel * sum_k mean_c |outputs[k] - target|``, without gradient."""
    if torch.is_tensor(outputs):
        outputs = [outputs]
    with torch.no_grad():
        err = sum((out - target).abs().mean(1, keepdim=True) for out in outputs)
    return -lambda_pixel * err


@LOSS_REGISTRY.register()
class AdaptiveSamplingRewardLoss(nn.Module):
    """REINFORCE loss of a pixel sampler (see the module docstring). A surrogate objective: its value may be negative.

    Args:
        loss_weight (float): Weight of the surrogate. Default: 1.0.
        lambda_pixel (float): lambda1, weight of the pixelwise L1 in the reward. Default: 1.0.
        lambda_budget (float): lambda2, penalty when more pixels were drawn than the budget. Default: 0.1.
        baseline (str): 'greedy', 'mean' or 'none'. Default: 'greedy'.
        budget_penalty (str): Who pays the budget penalty: 'drawn' (the drawn pixels) or 'image' (every pixel, Eq. 5
            as written); see the module docstring. Default: 'drawn'.
    """

    signed = True  # not a distance: negative values are normal

    def __init__(self, loss_weight=1.0, lambda_pixel=1.0, lambda_budget=0.1, baseline='greedy', budget_penalty='drawn'):
        super().__init__()
        if baseline not in BASELINES:
            raise ValueError(f"AdaptiveSamplingRewardLoss: baseline must be one of {BASELINES}, got '{baseline}'")
        if budget_penalty not in BUDGET_PENALTIES:
            raise ValueError(f'AdaptiveSamplingRewardLoss: budget_penalty must be one of {BUDGET_PENALTIES}, '
                             f"got '{budget_penalty}'")
        self.budget_penalty = budget_penalty
        self.loss_weight = loss_weight
        self.lambda_pixel = lambda_pixel
        self.lambda_budget = lambda_budget
        self.baseline = baseline

    def reward(self, outputs, target, num_selected=None, budget=None, selected=None):
        """(b, 1, H, W) reward of one decision set (no gradient)."""
        reward = reward_map(outputs, target, self.lambda_pixel)
        if num_selected is not None and budget is not None:
            over = (num_selected > budget).to(reward.dtype).view(-1, 1, 1, 1)
            penalty = over if selected is None or self.budget_penalty == 'image' else over * selected
            reward = reward - self.lambda_budget * penalty
        return reward

    def forward(self, log_prob, outputs, target, num_selected=None, budget=None, baseline_outputs=None, selected=None):
        """
        Args:
            log_prob (Tensor): (b, 1, H, W) log-probability of each pixel's drawn decision (the sampler's output).
            outputs (Tensor | list[Tensor]): (b, c, H, W) stage outputs computed with those decisions.
            target (Tensor): (b, c, H, W) sharp image.
            num_selected (Tensor | None): (b,) pixels drawn. Default: None (no budget penalty).
            budget (Tensor | None): (b,) pixels the level may take.
            selected (Tensor | None): (b, 1, H, W) the drawn decisions (1 = drawn); with it and
                ``budget_penalty='drawn'`` the penalty goes to the drawn pixels only, without it to every pixel.
                Default: None.
            baseline_outputs (Tensor | list[Tensor] | None): The same outputs from the greedy choice (required by
                ``baseline='greedy'``; the greedy choice never exceeds the budget).

        Returns:
            Tensor: scalar surrogate loss.
        """
        reward = self.reward(outputs, target, num_selected, budget, selected)
        if self.baseline == 'greedy':
            if baseline_outputs is None:
                raise ValueError("AdaptiveSamplingRewardLoss(baseline='greedy') needs baseline_outputs: the outputs of "
                                 'the greedy (top-N) choice')
            reward = reward - reward_map(baseline_outputs, target, self.lambda_pixel)
        elif self.baseline == 'mean':
            reward = reward - reward.mean(0, keepdim=True)
        return -self.loss_weight * (reward.detach() * log_prob).mean()
