"""The backends of :func:`deblurzoo.ops.deform_conv2d`, one module each, all with one signature:
``deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask, groups, offset_groups, out_size)``
on arguments that :mod:`deblurzoo.ops.deform_conv` has already checked (pairs, inferred group counts, output size).

- :mod:`.torchvision`: torchvision's compiled kernels (CPU and CUDA);
- :mod:`.pytorch`: exact pure PyTorch, fast on CPU (hand-written backward), else the plain-op :mod:`.reference`;
- :mod:`.mmcv`: mmcv's compiled op, where installed.
"""
from . import mmcv, pytorch, torchvision

IMPLEMENTATIONS = {
    'torchvision': torchvision.deform_conv2d,
    'pytorch': pytorch.deform_conv2d,
    'mmcv': mmcv.deform_conv2d,
}
