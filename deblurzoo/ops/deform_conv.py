"""Modulated deformable convolution (DCNv2) behind one interface, with selectable backends.

``deform_conv2d`` takes exactly the arguments of ``torchvision.ops.deform_conv2d``, checks them, and dispatches to one
of the backends in :mod:`deblurzoo.ops.deform_backends`:

* ``'torchvision'``: ``torchvision.ops.deform_conv2d`` (compiled kernels, CPU and CUDA).
* ``'pytorch'``: pure PyTorch, reproducing torchvision's output and all five gradients (input, offset, mask, weight,
  bias) exactly, including at integer sampling positions, exactly on the borders (-1, h) and outside the image; a tap
  at a NaN or infinite position reads 0. Fast on CPU (a four-corner gather with a hand-written backward); while
  tracing, exporting or compiling, and on other devices or dtypes, plain differentiable ops.
* ``'mmcv'``: ``mmcv.ops.modulated_deform_conv2d``, adapted to torchvision's argument convention; only when mmcv with
  compiled ops is installed.

The backend is chosen, from the most to the least specific, by a module's ``backend=`` argument, by
:func:`use_backend` / :func:`set_backend`, by the environment variable ``DEBLURZOO_DCN_BACKEND``, or else ``'auto'``:
torchvision's kernel on CUDA, 'pytorch' on CPU (``python scripts/bench_deform.py`` prints how they compare on the
machine at hand).

Under autocast (mixed-precision training, ``train.amp``) the op runs in float32 with autocast off, on every backend
and device (torchvision's CPU kernel has no bfloat16, and bilinear sampling positions need float32 precision): its
output is float32, which the next autocast layer casts down again.

``ModulatedDeformConv``, ``ModulatedDeformConvPack`` and ``DCNv2Pack`` have BasicSR's parameter layout, so BasicSR
checkpoints load into them with ``strict=True``.
"""
import contextlib
import math
import os

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from .deform_backends import IMPLEMENTATIONS as _IMPLEMENTATIONS
from .deform_backends import mmcv as _mmcv

__all__ = [
    'deform_conv2d', 'ModulatedDeformConv', 'ModulatedDeformConvPack', 'DCNv2Pack', 'set_backend', 'get_backend',
    'use_backend', 'available_backends'
]

ENV_VAR = 'DEBLURZOO_DCN_BACKEND'
BACKENDS = ('torchvision', 'pytorch', 'mmcv')
_VALID_NAMES = BACKENDS + ('auto', )

# explicit choice made by set_backend / use_backend; None means "use the environment variable, else 'auto'"
_explicit_backend = None

# --------------------------------------------------------------------------------------------------------------------
# backend selection
# --------------------------------------------------------------------------------------------------------------------


def available_backends():
    """Names of the backends usable in this environment (``'auto'`` not included).

    Returns:
        tuple[str]: A subset of ``('torchvision', 'pytorch', 'mmcv')``, in that order.
    """
    return tuple(name for name in BACKENDS if name != 'mmcv' or _mmcv.load() is not None)


def _check_name(name, source='backend'):
    """Validate a backend name; raise ValueError for unknown names and ImportError for 'mmcv' when unavailable."""
    if not isinstance(name, str) or name.lower() not in _VALID_NAMES:
        raise ValueError(f'Unknown deformable-convolution {source} {name!r}; valid names are: '
                         f"{', '.join(_VALID_NAMES)}.")
    name = name.lower()
    if name == 'mmcv' and _mmcv.load() is None:
        others = ', '.join(n for n in _VALID_NAMES if n != 'mmcv')
        raise ImportError("The 'mmcv' deformable-convolution backend was requested, but "
                          'mmcv.ops.modulated_deform_conv2d cannot be imported (install mmcv built with its compiled '
                          f'ops, i.e. the full mmcv package), or choose one of: {others}.')
    return name


def set_backend(name):
    """Set the global backend used by :func:`deform_conv2d` and by modules built with ``backend=None``.

    Args:
        name (str | None): 'torchvision', 'pytorch', 'mmcv' or 'auto'. None forgets the explicit choice, so that the
            environment variable ``DEBLURZOO_DCN_BACKEND`` (else 'auto') applies again.

    Raises:
        ValueError: Unknown name.
        ImportError: 'mmcv' requested while mmcv's ops cannot be imported.
    """
    global _explicit_backend
    _explicit_backend = None if name is None else _check_name(name)


def get_backend(resolve=False, device=None):
    """Return the global backend choice.

    Args:
        resolve (bool): If True, resolve 'auto' to the concrete backend used on ``device``. Default: False.
        device (torch.device | str | None): Device for resolving 'auto'. Default: None (CPU).

    Returns:
        str: The explicit choice if one was set, else ``$DEBLURZOO_DCN_BACKEND``, else 'auto' (resolved if asked).
    """
    if _explicit_backend is not None:
        name = _explicit_backend
    else:
        env = os.environ.get(ENV_VAR, '').strip()
        name = _check_name(env, source=f'backend in ${ENV_VAR}') if env else 'auto'
    return _resolve(name, device) if resolve else name


@contextlib.contextmanager
def use_backend(name):
    """Context manager that sets the global backend (see :func:`set_backend`) and restores the previous choice on exit.

    Args:
        name (str | None): Backend name, as for :func:`set_backend`.
    """
    global _explicit_backend
    previous = _explicit_backend
    set_backend(name)
    try:
        yield
    finally:
        _explicit_backend = previous


def _resolve(name, device=None):
    """Map a (validated) backend name to the concrete backend for ``device``."""
    if name != 'auto':
        return name
    # 'auto' = the fastest backend that is exact on the device: torchvision's CUDA kernel on GPUs; on CPU the exact
    # four-corner gather with its hand-written backward ('pytorch', same outputs and gradients as torchvision), many
    # times faster than torchvision's CPU kernel (scripts/bench_deform.py measures both)
    device = torch.device(device) if device is not None else None
    return 'torchvision' if device is not None and device.type == 'cuda' else 'pytorch'


# --------------------------------------------------------------------------------------------------------------------
# argument validation

# --------------------------------------------------------------------------------------------------------------------


def _pair_arg(value, name, minimum):
    """Turn an int or a pair of ints into a tuple of two ints no smaller than ``minimum``."""
    pair = _pair(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f'deform_conv2d: {name} must be an int or a pair of ints, got {value!r}.')
    if min(pair) < minimum:
        raise ValueError(f'deform_conv2d: {name} must be >= {minimum}, got {value!r}.')
    return pair


def _check_args(input, offset, weight, bias, stride, padding, dilation, mask):
    """Validate the arguments of :func:`deform_conv2d` and return the derived sizes.

    Returns:
        tuple: (stride, padding, dilation) as pairs, weight groups, offset groups, (h_out, w_out).
    """
    for name, t in (('input', input), ('offset', offset), ('weight', weight), ('mask', mask)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.dim() != 4):
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f'deform_conv2d: {name} must be a 4-D tensor, got {shape}.')
    stride = _pair_arg(stride, 'stride', 1)
    padding = _pair_arg(padding, 'padding', 0)
    dilation = _pair_arg(dilation, 'dilation', 1)

    b, c, h, w = input.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c_per_group == 0 or kh == 0 or kw == 0 or c % c_per_group != 0:
        raise ValueError(f'deform_conv2d: input channels ({c}) must be a multiple of weight.shape[1] ({c_per_group}); '
                         f'got input {tuple(input.shape)}, weight {tuple(weight.shape)}.')
    groups = c // c_per_group
    if c_out % groups != 0:
        raise ValueError(f'deform_conv2d: output channels ({c_out}) must be divisible by the weight groups '
                         f'({groups} = {c} input channels // weight.shape[1] {c_per_group}).')
    if bias is not None and tuple(bias.shape) != (c_out, ):
        raise ValueError(f'deform_conv2d: bias must have shape ({c_out},), got {tuple(bias.shape)}.')

    k = kh * kw
    if offset.shape[0] != b:
        raise ValueError(f'deform_conv2d: offset batch size ({offset.shape[0]}) differs from input batch size ({b}).')
    if offset.shape[1] == 0 or offset.shape[1] % (2 * k) != 0:
        raise ValueError(f'deform_conv2d: offset channels ({offset.shape[1]}) must be a positive multiple of '
                         f'2 * kh * kw = {2 * k} for a {kh}x{kw} kernel.')
    offset_groups = offset.shape[1] // (2 * k)
    if c % offset_groups != 0:
        raise ValueError(f'deform_conv2d: input channels ({c}) must be divisible by the offset groups '
                         f'({offset_groups} = offset channels {offset.shape[1]} // {2 * k}).')

    h_out = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    w_out = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if h_out <= 0 or w_out <= 0:
        raise ValueError(f'deform_conv2d: the output would be empty ({h_out}x{w_out}) for input {h}x{w}, kernel '
                         f'{kh}x{kw}, stride {stride}, padding {padding}, dilation {dilation}.')
    if tuple(offset.shape[2:]) != (h_out, w_out):
        raise ValueError(f'deform_conv2d: offset spatial size {tuple(offset.shape[2:])} must equal the output size '
                         f'{(h_out, w_out)}.')
    if mask is not None:
        if tuple(mask.shape) != (b, offset_groups * k, h_out, w_out):
            raise ValueError(f'deform_conv2d: mask must have shape {(b, offset_groups * k, h_out, w_out)} '
                             f'(offset groups {offset_groups} * kh * kw {k} channels), got {tuple(mask.shape)}.')
    return stride, padding, dilation, groups, offset_groups, (h_out, w_out)


# --------------------------------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------------------------------




def _dispatch(input, offset, weight, bias, stride, padding, dilation, mask, backend=None):
    """Validate the arguments and run the chosen backend (``backend=None``: the global choice)."""
    stride, padding, dilation, groups, offset_groups, out_size = _check_args(input, offset, weight, bias, stride,
                                                                             padding, dilation, mask)
    name = get_backend() if backend is None else _check_name(backend)
    name = _resolve(name, input.device)
    if name == 'mmcv':
        _check_name(name)  # raises ImportError if mmcv became unavailable
    args = (input, offset, weight, bias, stride, padding, dilation, mask, groups, offset_groups, out_size)
    device = input.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        # mixed precision: run in float32 (see the module docstring)
        args = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
        with torch.autocast(device, enabled=False):
            return _IMPLEMENTATIONS[name](*args)
    return _IMPLEMENTATIONS[name](*args)


def deform_conv2d(input, offset, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), mask=None):
    """(Modulated) deformable 2-D convolution with torchvision's signature, run by the selected backend.

    Kernel point k = i * kw + j of offset group g samples its input at the regular position shifted by
    (offset[:, g * 2 * kh * kw + 2 * k], offset[:, g * 2 * kh * kw + 2 * k + 1]) = (dy, dx), bilinearly with zeros
    outside the image, and multiplies the sample by mask[:, g * kh * kw + k] if a mask is given.

    Args:
        input (Tensor): Input features, (b, c_in, h, w).
        offset (Tensor): Offsets, (b, 2 * offset_groups * kh * kw, h_out, w_out); offset_groups is inferred from the
            channel count and must divide c_in.
        weight (Tensor): Convolution weight, (c_out, c_in // groups, kh, kw); groups is inferred as
            c_in // weight.shape[1].
        bias (Tensor | None): Bias, (c_out, ). Default: None.
        stride (int | tuple[int, int]): Convolution stride. Default: (1, 1).
        padding (int | tuple[int, int]): Implicit zero padding on both sides. Default: (0, 0).
        dilation (int | tuple[int, int]): Spacing between kernel points. Default: (1, 1).
        mask (Tensor | None): Modulation, (b, offset_groups * kh * kw, h_out, w_out); None means unmodulated (DCNv1).
            Default: None.

    Returns:
        Tensor: (b, c_out, h_out, w_out).

    Raises:
        ValueError: Inconsistent shapes, or an unknown backend name in ``$DEBLURZOO_DCN_BACKEND``.
        ImportError: The 'mmcv' backend is selected but unavailable.

    Note:
        Once differentiable with the 'torchvision' and (on CPU) 'pytorch' backends: differentiating the gradients
        (double backward) raises.
    """
    return _dispatch(input, offset, weight, bias, stride, padding, dilation, mask)


# --------------------------------------------------------------------------------------------------------------------
# modules
# --------------------------------------------------------------------------------------------------------------------


class ModulatedDeformConv(nn.Module):
    """Modulated deformable convolution taking offsets and mask as inputs, with BasicSR's parameter layout.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple[int, int]): Kernel size.
        stride (int | tuple[int, int]): Stride. Default: 1.
        padding (int | tuple[int, int]): Implicit zero padding. Default: 0.
        dilation (int | tuple[int, int]): Dilation. Default: 1.
        groups (int): Weight groups (as in nn.Conv2d). Default: 1.
        deformable_groups (int): Offset groups: channel groups sharing one set of offsets and mask. Default: 1.
        bias (bool): Whether to learn a bias. Default: True.
        backend (str | None): 'torchvision', 'pytorch', 'mmcv' or 'auto' for this module; None follows the global
            choice (:func:`set_backend`, ``$DEBLURZOO_DCN_BACKEND``). Default: None.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 kernel_size,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups=1,
                 deformable_groups=1,
                 bias=True,
                 backend=None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by '
                             f'groups ({groups}).')
        if in_channels % deformable_groups:
            raise ValueError(f'in_channels ({in_channels}) must be divisible by deformable_groups '
                             f'({deformable_groups}).')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.backend = None if backend is None else _check_name(backend)

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)
        self.init_weights()

    def init_weights(self):
        """BasicSR's initialisation: weight ~ U(-1/sqrt(n), 1/sqrt(n)) with n = in_channels * kh * kw, zero bias."""
        n = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        stdv = 1. / math.sqrt(n)
        self.weight.data.uniform_(-stdv, stdv)
        if self.bias is not None:
            self.bias.data.zero_()

    def forward(self, x, offset, mask=None):
        """
        Args:
            x (Tensor): (b, in_channels, h, w).
            offset (Tensor): (b, 2 * deformable_groups * kh * kw, h_out, w_out).
            mask (Tensor | None): (b, deformable_groups * kh * kw, h_out, w_out). Default: None.

        Returns:
            Tensor: (b, out_channels, h_out, w_out).
        """
        return _dispatch(
            x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask, backend=self.backend)

    def extra_repr(self):
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
             f'padding={self.padding}, dilation={self.dilation}, groups={self.groups}, '
             f'deformable_groups={self.deformable_groups}, bias={self.bias is not None}')
        if self.backend is not None:
            s += f', backend={self.backend!r}'
        return s


class ModulatedDeformConvPack(ModulatedDeformConv):
    """Modulated deformable convolution predicting its own offsets and mask from its input (BasicSR's layout).

    ``conv_offset`` (zero-initialised, so the layer starts as a plain convolution scaled by 0.5) outputs
    3 * deformable_groups * kh * kw channels, split in three: the first two thirds, concatenated, are the offsets and
    the last third, through a sigmoid, the mask.

    Args: as :class:`ModulatedDeformConv`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_offset = nn.Conv2d(
            self.in_channels,
            self.deformable_groups * 3 * self.kernel_size[0] * self.kernel_size[1],
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True)
        self.init_weights()

    def init_weights(self):
        super().init_weights()
        if hasattr(self, 'conv_offset'):
            self.conv_offset.weight.data.zero_()
            self.conv_offset.bias.data.zero_()

    def _offset_mask(self, feat):
        out = self.conv_offset(feat)  # (b, 3 * g * kh * kw, h_out, w_out)
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)  # (b, 2 * g * kh * kw, h_out, w_out)
        return offset, torch.sigmoid(mask)  # mask: (b, g * kh * kw, h_out, w_out)

    def forward(self, x):
        """
        Args:
            x (Tensor): (b, in_channels, h, w).

        Returns:
            Tensor: (b, out_channels, h_out, w_out).
        """
        offset, mask = self._offset_mask(x)
        return super().forward(x, offset, mask)


class DCNv2Pack(ModulatedDeformConvPack):
    """Modulated deformable convolution whose offsets and mask are predicted from separate features (BasicSR's
    DCNv2Pack, used for deformable alignment; see "Delving Deep into Deformable Alignment in Video Super-Resolution").

    Args: as :class:`ModulatedDeformConv`.
    """

    def forward(self, x, feat):
        """
        Args:
            x (Tensor): Features to convolve, (b, in_channels, h, w).
            feat (Tensor): Features the offsets and mask are predicted from, (b, in_channels, h, w).

        Returns:
            Tensor: (b, out_channels, h_out, w_out).
        """
        offset, mask = self._offset_mask(feat)
        return ModulatedDeformConv.forward(self, x, offset, mask)
