"""The policy-gradient (REINFORCE) loss that trains SAPHNet's pixel samplers (paper 003, Eqs. 5-7).

Each pixel of the probability map is an agent (all share the head's weights) that decides "hard to restore: sample
me". Its reward is pixelwise: ``r = -lambda1 * sum over the stage outputs of |output - gt|`` at that pixel (mean over
channels), minus ``lambda2`` when the policy drew more pixels than the budget. Given the drawn decisions
(``selected``), the penalty goes to the agents that selected themselves: a penalty shared by every pixel of the image
is a constant advantage for each of them and, per pixel, carries no gradient in expectation (the policy then drifts to
drawing every pixel); without ``selected`` it applies to the whole image as written in the paper. The loss is the
REINFORCE surrogate ``-(r - b) * log p(decisions)``, averaged over pixels; the advantage ``r - b`` is a constant
(no gradient reaches the deblurring network through it), so only the head learns from this loss, through the
log-probability. Baselines ``b`` reduce the variance: ``'greedy'`` the reward of the top-N choice (self-critical,
computed by the training model from a second forward), ``'mean'`` the batch's mean reward per pixel position, or
``'none'``.
"""
import torch
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

BASELINES = ('greedy', 'mean', 'none')


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
    """

    signed = True  # not a distance: negative values are normal

    def __init__(self, loss_weight=1.0, lambda_pixel=1.0, lambda_budget=0.1, baseline='greedy'):
        super().__init__()
        if baseline not in BASELINES:
            raise ValueError(f"AdaptiveSamplingRewardLoss: baseline must be one of {BASELINES}, got '{baseline}'")
        self.loss_weight = loss_weight
        self.lambda_pixel = lambda_pixel
        self.lambda_budget = lambda_budget
        self.baseline = baseline

    def reward(self, outputs, target, num_selected=None, budget=None, selected=None):
        """(b, 1, H, W) reward of one decision set (no gradient)."""
        reward = reward_map(outputs, target, self.lambda_pixel)
        if num_selected is not None and budget is not None:
            over = (num_selected > budget).to(reward.dtype).view(-1, 1, 1, 1)
            penalty = over if selected is None else over * selected
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
            selected (Tensor | None): (b, 1, H, W) the drawn decisions (1 = drawn); with it the budget penalty goes to
                the drawn pixels only (see the module docstring). Default: None.
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
