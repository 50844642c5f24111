"""Helpers for tests that need a network in a generic state (a helper module, not a test file)."""
import torch


def perturbed(net, scale=0.1, seed=0):
    """``net`` with every parameter shifted by seeded Gaussian noise of std ``scale``, so that no zero-initialised layer
    (offset predictors, residual outputs) hides a path; returns ``net``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net
