"""What each arch takes and returns, for the tests that run every arch (a helper module, not a test file).

Read from the arch's declared frame mode (``deblurzoo/archs/protocol.py``): image archs take (b, 3, h, w) and return
the same shape, window archs take a clip of their ``num_frame`` frames and return its centre frame, sequence archs take
a clip of any length and return the clip.
"""
import torch

from deblurzoo.archs.protocol import arch_info

SEQUENCE_FRAMES = 3  # clip length for sequence archs


def make_input(net, b, h, w):
    """A random input ``net`` takes at h x w."""
    info = arch_info(net)
    if info.mode == 'image':
        return torch.rand(b, 3, h, w)
    return torch.rand(b, info.num_frame if info.mode == 'window' else SEQUENCE_FRAMES, 3, h, w)


def expected_shape(net, x):
    """The shape ``net`` returns for ``x``."""
    if arch_info(net).mode == 'window':
        return (x.shape[0], *x.shape[2:])
    return tuple(x.shape)
