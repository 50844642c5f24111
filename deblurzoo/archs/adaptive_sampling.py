"""Pixel-adaptive sampling for encoder-decoders (paper 003, SAPHNet, Sec. 3.1): the sampler, and how the pieces make
an arch.

An encoder-decoder normally halves its feature maps uniformly at every level. With adaptive sampling a level keeps as
many pixels as the uniform grid would have, but chooses *which* full-resolution pixels, from a probability map: hard
regions are sampled densely, flat ones sparsely, at the same cost.

This module holds the sampler: :class:`PixelSampler` chooses each coarser level's pixels (``policy`` one of
:data:`POLICIES`), :func:`level_budgets` says how many. The grids, tokens and fallbacks are in ``sample_grid.py``
(``SampleGrid``, ``LevelMap``, ``make_fallback``), the ops on them in ``token_ops.py`` (``TokenConv``,
``pixel_dependent_filter``, ``scatter_to``).

Wrapping your own encoder-decoder
---------------------------------
1. Build each block as a module ``forward(level_map, enc=None) -> tokens`` using ``TokenConv`` (drop-in for
   ``nn.Conv2d(c, c', k, padding=k // 2)``) and per-token ops (``nn.Linear``, activations).
2. Give ``AdaptiveEncoderDecoder`` (``patch_hierarchy.py``) a ``block(num_feat, level, decoder)`` factory and the level
   widths; it handles the input/output convs, the sampled downsampling, the scatter-and-merge upsampling and the
   fallbacks.
3. Put a :class:`PixelSampler` on the features of whatever precedes the encoder-decoder (a previous stage, or a light
   pre-pass; detach them), call it for the grids (``policy='uniform' | 'sample' | 'greedy'``), and add
   ``AdaptiveSamplingRewardLoss`` (deblurzoo.losses) on the log-probabilities it returns.
``MultiPatchHierarchy`` (``patch_hierarchy.py``) does steps 2 and 3 for a DMPHN-style stack of stages; ``DMPHN``
(``dmphn_arch.py``) is its plain-conv worked example, ``SAPHNet`` (``saphn_arch.py``) the paper's full model.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .sample_grid import SampleGrid

POLICIES = ('uniform', 'sample', 'greedy')


def level_budgets(size, num_levels, sample_ratio=1.0):
    """Pixels per level 1..num_levels-1: the uniform lattice's count times ``sample_ratio`` (paper 003, Table V),
    within what the finer level has."""
    h, w = size
    budgets, available = [], h * w
    for level in range(1, num_levels):
        s = 2**level
        n = max(1, min(available, int(round(sample_ratio * math.ceil(h / s) * math.ceil(w / s)))))
        budgets.append(n)
        available = n
    return budgets


class PixelSampler(nn.Module):
    """Probability head and policy: which full-resolution pixels each coarser level samples (paper 003, Eqs. 3-4).

    ``P = sigmoid(convs(features))`` is a per-pixel Bernoulli policy over "this pixel is hard to restore". One rule
    chooses the pixels in training and at test (Sec. 3.1.1: "we select the top N hardest pixel-positions with the
    highest probabilities in P"): rank the candidate pixels by P and take the first N. The candidates differ only by
    the draw: ``'greedy'`` (inference, and the baseline) ranks every pixel by P, i.e. the top N by P; ``'sample'``
    (training, "by sampling from the pixelwise probability distributions P") draws every pixel's decision from P and
    ranks the drawn pixels first, each group by P -- so more than N drawn pixels keep the N most probable, fewer than N
    are topped up by P with the most probable undrawn ones. ``'uniform'`` returns the lattices (pre-training, and the
    ablation). Level ``l`` takes the first N_l pixels of the one ranking, so the levels are nested.

    Gradients reach the head only through ``log_prob`` of the draws (the pixel choice itself is not differentiable).
    As in the paper, REINFORCE credits the draws only; the ranking by P inside each group is treated as part of the
    environment (its own dependence on P carries no gradient).
    Args:
        num_in_ch (int): Channels of the features P is computed from.
        num_feat (int): Width of the head's hidden conv. Default: 32.
        num_levels (int): Levels of the encoder-decoder it samples for (level 0 is every pixel). Default: 3.
        sample_ratio (float): Pixels per level relative to the uniform lattice (Table V). Default: 1.0.
    """

    def __init__(self, num_in_ch, num_feat=32, num_levels=3, sample_ratio=1.0):
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(num_in_ch, num_feat, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(num_feat, 1, 3, padding=1))
        self.num_levels = num_levels
        self.sample_ratio = sample_ratio

    def uniform(self, batch, size, device):
        return [SampleGrid.uniform(batch, size, 2**level, device) for level in range(1, self.num_levels)]

    def forward(self, feat, policy='greedy'):
        """Choose the pixels of levels 1..num_levels-1.

        Args:
            feat (Tensor): (b, c, H, W) features at the encoder-decoder's full resolution.
            policy (str): 'greedy', 'sample' or 'uniform'.

        Returns:
            tuple[list[SampleGrid], dict]: The grids, and ``prob`` (b, 1, H, W), ``log_prob`` (b, 1, H, W) of the
            drawn decisions (zeros unless sampled), ``num_selected`` (b,) pixels drawn (the budget's count for other
            policies) and ``budget`` (b,) the level-1 pixel count.
        """
        if policy == 'uniform':
            b, _, h, w = feat.shape
            budget = torch.full((b, ), level_budgets((h, w), 2)[0], dtype=torch.long, device=feat.device)
            zeros = feat.new_zeros(b, 1, h, w)
            return self.uniform(b, (h, w), feat.device), dict(prob=zeros, log_prob=zeros, selected=zeros,
                                                              num_selected=budget, budget=budget)
        return self.choose(self.head(feat), policy)

    def choose(self, logit, policy='greedy'):
        """:meth:`forward` from the head's output ``logit`` (b, 1, H, W) (to compute it once over a whole image and
        choose per patch); ``policy`` 'greedy' or 'sample'."""
        if policy not in ('greedy', 'sample'):
            raise ValueError(f"policy must be 'greedy' or 'sample' here, got '{policy}'")
        b, _, h, w = logit.shape
        budgets = level_budgets((h, w), self.num_levels, self.sample_ratio)
        budget = torch.full((b, ), budgets[0], dtype=torch.long, device=logit.device)
        prob = torch.sigmoid(logit)
        score = prob.detach().flatten(1)
        if policy == 'sample':
            drawn = torch.bernoulli(score)
            # log P(drawn) = drawn * log p + (1 - drawn) * log(1 - p), stably from the logit
            log_prob = -F.binary_cross_entropy_with_logits(logit, drawn.view_as(logit), reduction='none')
            selected = drawn.view_as(logit)
            num_selected = drawn.sum(1).long()
            score = 2 * drawn + score  # drawn pixels score 2 + P, the others P: drawn first, each group by P
        else:
            log_prob = torch.zeros_like(prob)
            selected = torch.zeros_like(prob)
            num_selected = budget
        order = score.topk(budgets[0], dim=1).indices  # sorted by score: the levels' sets are nested
        grids = [
            SampleGrid(order[:, :n].sort(dim=1).values, (h, w), 2**level)
            for level, n in enumerate(budgets, start=1)
        ]
        return grids, dict(prob=prob, log_prob=log_prob, selected=selected, num_selected=num_selected, budget=budget)
