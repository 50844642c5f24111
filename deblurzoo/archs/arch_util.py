"""Blocks and helpers shared by deblurzoo's architectures."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init


def pad_to_multiple(x, multiple, mode='reflect', min_size=0):
    """Pad the last two axes of ``x`` at the bottom/right to a multiple of ``multiple`` (and at least ``min_size``).

    Args:
        x (Tensor): (..., h, w).
        multiple (int): Required multiple of h and w.
        mode (str): 'reflect' (falls back to 'replicate' where the input is too small to reflect), 'replicate' or
            'constant'. Default: 'reflect'.
        min_size (int): Smallest padded h and w (e.g. where reflection-padded dilated convs need a minimum size).
            Default: 0.

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded tensor and the original (h, w), for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = max(h, min_size), max(w, min_size)
    pad_h, pad_w = pad_h + (-pad_h) % multiple - h, pad_w + (-pad_w) % multiple - w
    if pad_h or pad_w:
        if mode == 'reflect' and (pad_h >= h or pad_w >= w):
            mode = 'replicate'
        shape = x.shape
        x4 = x.reshape(-1, *shape[-3:]) if x.dim() != 4 else x
        x4 = F.pad(x4, (0, pad_w, 0, pad_h), mode=mode)
        x = x4.reshape(*shape[:-2], h + pad_h, w + pad_w)
    return x, (h, w)


def crop_to(x, size):
    """Crop the last two axes of ``x`` back to ``size`` = (h, w)."""
    return x[..., :size[0], :size[1]]


def default_init_weights(module, init_type='kaiming'):
    """Initialise every conv/linear weight of ``module`` ('xavier' or 'kaiming' normal), biases to zero."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == 'xavier':
                init.xavier_normal_(m.weight)
            else:
                init.kaiming_normal_(m.weight, a=0.25, nonlinearity='leaky_relu')
            if m.bias is not None:
                init.zeros_(m.bias)


def zero_module(module):
    """Set every parameter of ``module`` to zero (e.g. offset predictors that must start at the regular grid)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def conv3x3(in_ch, out_ch, stride=1, dilation=1, bias=True):
    """3x3 convolution keeping the size (for stride 1) at any dilation."""
    return nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, dilation=dilation, bias=bias)


class ResidualBlock(nn.Module):
    """conv - act - conv (+ identity) at a fixed width, optionally dilated.

    Args:
        num_feat (int): Channel number. Default: 64.
        dilation (int): Dilation of both convs. Default: 1.
        num_conv (int): Number of convs in the block. Default: 2.
        act (str): 'prelu' or 'relu'. Default: 'prelu'.
    """

    def __init__(self, num_feat=64, dilation=1, num_conv=2, act='prelu'):
        super().__init__()
        layers = []
        for i in range(num_conv):
            layers.append(conv3x3(num_feat, num_feat, dilation=dilation))
            if i < num_conv - 1:
                layers.append(nn.PReLU(num_feat) if act == 'prelu' else nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x)


def count_parameters(net):
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())


def check_image_input(x, num_ch, name):
    """Raise a clear error when an arch receives something other than a (b, num_ch, h, w) float batch."""
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != num_ch:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f'{name} expects a (batch, {num_ch}, height, width) tensor, got {shape}')


class ScaledConv2d(nn.Conv2d):
    """Conv with a learned per-channel scale before the bias, in place of normalisation (Brehm et al., NTIRE 2020).

    ``y = scale * (W * x) + bias``; the scale starts at 1. The padding keeps the size at stride 1 for any dilation
    and uses ``padding_mode`` (reflection by default, as the paper pads "wherever possible").
    """

    def __init__(self, in_ch, out_ch, kernel_size=3, stride=1, dilation=1, padding_mode='reflect'):
        super().__init__(in_ch, out_ch, kernel_size, stride, padding=dilation * (kernel_size - 1) // 2,
                         dilation=dilation, bias=True, padding_mode=padding_mode)
        self.scale = nn.Parameter(torch.ones(out_ch))

    def zero_(self):
        """Start at a zero output (weight and bias zero, the scale kept at 1 so the weight still learns)."""
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)
        return self

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.scale.view(-1, 1, 1, 1), self.bias)


class ScaledConvTranspose2d(nn.ConvTranspose2d):
    """3x3 transposed conv that exactly doubles h and w, with :class:`ScaledConv2d`'s per-channel scale."""

    def __init__(self, in_ch, out_ch):
        super().__init__(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1, bias=True)
        self.scale = nn.Parameter(torch.ones(out_ch))

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight * self.scale.view(1, -1, 1, 1), self.bias, stride=2, padding=1,
                                  output_padding=1)


def leaky_relu():
    """LeakyReLU(0.2), the activation of the NTIRE 2020 two-stage nets (TensorFlow's default slope)."""
    return nn.LeakyReLU(0.2, inplace=True)


class ScaledResBlock(nn.Module):
    """``x + act(conv(act(conv(x))))`` with 3x3 :class:`ScaledConv2d` convs (a LeakyReLU after every conv)."""

    def __init__(self, num_feat):
        super().__init__()
        self.body = nn.Sequential(ScaledConv2d(num_feat, num_feat, 3), leaky_relu(),
                                  ScaledConv2d(num_feat, num_feat, 3), leaky_relu())

    def forward(self, x):
        return x + self.body(x)
