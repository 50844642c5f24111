"""The 'torchvision' deformable-convolution backend: ``torchvision.ops.deform_conv2d`` (compiled kernels, CPU and
CUDA; 'auto' picks it on CUDA)."""
import torchvision


def deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask, groups, offset_groups, out_size):
    """torchvision's op; ``groups``, ``offset_groups`` and ``out_size`` (checked by the caller) it infers itself."""
    return torchvision.ops.deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask)
