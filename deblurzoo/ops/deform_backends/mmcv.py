"""The 'mmcv' deformable-convolution backend: ``mmcv.ops.modulated_deform_conv2d``, usable only where an mmcv build
with compiled ops is installed (mmcv ships no wheels for current torch; it is never required)."""
_op = None
_checked = False


def load():
    """``mmcv.ops.modulated_deform_conv2d``, or None when mmcv (with compiled ops) cannot be imported."""
    global _op, _checked
    if not _checked:
        _checked = True
        try:
            from mmcv.ops import modulated_deform_conv2d
        except Exception:  # ImportError, or OSError / RuntimeError from a broken compiled extension
            modulated_deform_conv2d = None
        _op = modulated_deform_conv2d
    return _op


def deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask, groups, offset_groups, out_size):
    """mmcv's modulated op, which uses torchvision's per-point (y, x) offset layout but always takes a mask."""
    if mask is None:
        mask = input.new_ones(offset.shape[0], offset.shape[1] // 2, *offset.shape[2:])
    return load()(input, offset, mask, weight, bias, stride, padding, dilation, groups, offset_groups)
