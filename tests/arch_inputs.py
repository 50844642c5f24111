"""What each registered arch takes and returns, for the tests that run every arch (a helper module, not a test file).

Image archs take (b, 3, h, w) and return the same shape; video archs are listed here: window archs take a clip of
their frames and return its centre frame, recurrent ones take a clip of any length and return the clip.
"""
import torch


def image(b, h, w):
    return torch.rand(b, 3, h, w)


def clip(t):
    """A maker of (b, t, 3, h, w) clips."""
    return lambda b, h, w: torch.rand(b, t, 3, h, w)


# input per arch: callable(b, h, w) -> tensor; default: ``image``
INPUTS = {'SARNMulti': clip(5), 'SARNRecurrent': clip(3), 'MLFANet': clip(3)}


def center_frame(x):
    return (x.shape[0], *x.shape[2:])


# output shape per arch: callable(input) -> shape; default: the input's
OUTPUT_SHAPES = {'SARNMulti': center_frame, 'MLFANet': center_frame}


def make_input(arch, b, h, w):
    return INPUTS.get(arch, image)(b, h, w)


def expected_shape(arch, x):
    return tuple(OUTPUT_SHAPES[arch](x)) if arch in OUTPUT_SHAPES else tuple(x.shape)
