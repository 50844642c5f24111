"""Test-time helpers shared by every model and the inference CLI: geometric self-ensemble.

Geometric self-ensemble (Lim et al., EDSR; Brehm et al. use it for their NTIRE 2020 results) runs a network on
flipped and rotated copies of the input, transforms each result back and averages them. It works for any network
whose output has the input's spatial layout (images (b, c, h, w) and clips (b, t, c, h, w): the last two axes are
transformed). Transform sets, each a list of (horizontal flip, quarter turns) applied flip first:

- 4, the paper's ("four different versions by rotating and flipping"): identity, horizontal flip, vertical flip,
  180-degree rotation; no transposition, so h and w keep their sizes;
- 6, the authors' released code: identity, horizontal flip, vertical flip and the three rotations;
- 8, the full dihedral group (EDSR's x8).

Models read ``val.self_ensemble`` (0/false: off, true: 8, or 4, 6, 8).
"""
import torch

TRANSFORMS = {
    1: ((False, 0), ),
    4: ((False, 0), (True, 0), (True, 2), (False, 2)),
    6: ((False, 0), (True, 0), (True, 2), (False, 1), (False, 2), (False, 3)),
    8: tuple((flip, k) for flip in (False, True) for k in range(4)),
}


def ensemble_size(value, key='val.self_ensemble'):
    """The number of transforms an option asks for: false/0/None -> 1 (off), true -> 8, or 4, 6, 8."""
    if value is None or value is False or value == 0:
        return 1
    if value is True:
        return 8
    if isinstance(value, int) and value in TRANSFORMS:
        return value
    raise ValueError(f'{key}: use false, true (8 transforms), 4 (the paper\'s flips and 180-degree rotation), 6 (the '
                     f'NTIRE 2020 authors\' code) or 8 (flips and rotations); got {value!r}')


def apply_transform(x, flip, k):
    """Flip the last axis (if ``flip``), then rotate the last two by ``k`` quarter turns."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, (-2, -1)) if k % 4 else x


def invert_transform(y, flip, k):
    """Undo :func:`apply_transform`."""
    if k % 4:
        y = torch.rot90(y, -k, (-2, -1))
    return y.flip(-1) if flip else y


def self_ensemble(fn, x, num=8):
    """Average of ``fn`` over ``num`` flipped/rotated copies of ``x``, each transformed back.

    Args:
        fn (callable): Tensor -> tensor of the same spatial layout (e.g. a network in eval mode).
        x (Tensor): (..., h, w) input.
        num (int): 1 (just ``fn(x)``), 4, 6 or 8 (see the module docstring). Default: 8.

    Returns:
        Tensor: The averaged output. Copies run one after another, so memory stays that of one call.
    """
    transforms = TRANSFORMS[ensemble_size(num, 'num')]
    if len(transforms) == 1:
        return fn(x)
    total = None
    for flip, k in transforms:
        out = invert_transform(fn(apply_transform(x, flip, k)), flip, k)
        total = out if total is None else total + out
    return total / len(transforms)
