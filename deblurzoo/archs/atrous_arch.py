"""AtrousNet: stage 1 of Brehm, Scherer and Lienhart, "High-Resolution Dual-Stage Multi-Level Feature Aggregation for
Single Image and Video Deblurring" (NTIRE 2020 workshops; first in the single-image deblurring challenge).

One down-sampling only, then 20 atrous residual blocks at half resolution: each runs four parallel 3x3 convs of
``branch_feat`` (128) filters with dilations 1, 2, 3, 4 on its input, concatenates them (512), and a 3x3 conv brings
the sum back to ``block_feat`` (256) before the residual addition, so every block sees an almost full 11x11 window and
the stack a large receptive field without losing resolution. Layout (DESIGN.md; widths from the authors' released
code, the 9x9 first kernel from the paper)::

    x in [-1, 1] -> 9x9 conv 64 -> 3x3/2 conv 128 -> [1x1 conv 256] -> 20 atrous blocks 256
      -> concat with the stride-2 features (384) -> 3x3/2 transposed conv 128 -> 3x3 conv 64 -> 3x3 conv 3 -> + x

Every conv but the output one is followed by LeakyReLU (0.2); there is no normalisation, only a learned per-channel
scale before each bias (:class:`ScaledConv2d`); convs pad by reflection. The output conv starts at zero, so the
untrained net is the identity.

``atrous=False`` is the paper's Table 2 ablation "w/o atrous conv": standard residual blocks (two 3x3 convs, rate 1)
and, with ``num_down: 3, num_block: 12, block_feat: 512``, its encoder-decoder with three down-samplings and skip
connections (``options/train_atrousnet_noatrous_reds.yml``; 32.34 dB on REDS val against 33.93 dB).
"""
import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from .arch_util import (ScaledConv2d, ScaledConvTranspose2d, ScaledResBlock, check_image_input, crop_to, leaky_relu,
                        pad_to_multiple)
from .protocol import ArchProtocol


class AtrousBlock(nn.Module):
    """Parallel dilated 3x3 convs, concatenated, fused by a 3x3 conv, plus the input (the paper's Figure 2).

    Args:
        num_feat (int): Input and output channels. Default: 256.
        branch_feat (int): Filters of each dilated branch. Default: 128.
        dilations (tuple[int]): One branch per dilation. Default: (1, 2, 3, 4).
    """

    def __init__(self, num_feat=256, branch_feat=128, dilations=(1, 2, 3, 4)):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(ScaledConv2d(num_feat, branch_feat, 3, dilation=d), leaky_relu()) for d in dilations)
        self.fuse = nn.Sequential(ScaledConv2d(branch_feat * len(dilations), num_feat, 3), leaky_relu())

    def forward(self, x):
        return x + self.fuse(torch.cat([branch(x) for branch in self.branches], 1))


@ARCH_REGISTRY.register()
class AtrousNet(nn.Module):
    """High-resolution atrous deblurring network (see the module docstring). Keyword arguments equal YAML keys.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels (equal to ``num_in_ch``: the net predicts a residual). Default: 3.
        num_feat (int): Width of the first conv; level ``i`` (stride 2^i) has ``num_feat * 2**i``. Default: 64.
        head_kernel (int): First conv's kernel (paper 9; the authors' code 7). Default: 9.
        num_down (int): Stride-2 convs before the blocks (paper 1; the ablation 3). Default: 1.
        num_block (int): Residual blocks. Default: 20.
        block_feat (int): Blocks' width (a 1x1 conv projects to it where the encoder's width differs). Default: 256.
        branch_feat (int): Filters of each dilated branch of an atrous block. Default: 128.
        dilations (tuple[int]): Dilations of the parallel branches. Default: (1, 2, 3, 4).
        atrous (bool): Atrous blocks; False: standard residual blocks (Table 2 ablation). Default: True.
    """

    protocol = ArchProtocol('image')

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, head_kernel=9, num_down=1, num_block=20,
                 block_feat=256, branch_feat=128, dilations=(1, 2, 3, 4), atrous=True):
        super().__init__()
        if num_out_ch != num_in_ch:
            raise ValueError(f'AtrousNet predicts a residual: num_out_ch ({num_out_ch}) must equal num_in_ch '
                             f'({num_in_ch})')
        if num_down < 1:
            raise ValueError(f'AtrousNet: num_down must be at least 1, got {num_down}')
        if head_kernel % 2 != 1:
            raise ValueError(f'AtrousNet: head_kernel must be odd, got {head_kernel}')
        self.num_in_ch = num_in_ch
        self.multiple = 2**num_down
        # reflection padding needs every padded map larger than its padding
        deepest_pad = max(dilations) if atrous else 1
        self.min_size = max(head_kernel // 2 + 1, (deepest_pad + 1) * self.multiple)
        widths = [num_feat * 2**i for i in range(num_down + 1)]
        self.head = nn.Sequential(ScaledConv2d(num_in_ch, num_feat, head_kernel), leaky_relu())
        self.downs = nn.ModuleList(
            nn.Sequential(ScaledConv2d(widths[i], widths[i + 1], 3, stride=2), leaky_relu()) for i in range(num_down))
        self.project = (nn.Identity() if widths[-1] == block_feat else nn.Sequential(
            ScaledConv2d(widths[-1], block_feat, 1), leaky_relu()))
        blocks = [AtrousBlock(block_feat, branch_feat, tuple(dilations)) if atrous else ScaledResBlock(block_feat)
                  for _ in range(num_block)]
        self.blocks = nn.Sequential(*blocks)
        # decoder: concat with the skip of the level, then up to the next finer level keeping the level's width
        ups, in_ch = [], block_feat
        for i in range(num_down, 0, -1):
            ups.append(nn.Sequential(ScaledConvTranspose2d(in_ch + widths[i], widths[i]), leaky_relu()))
            in_ch = widths[i]
        self.ups = nn.ModuleList(ups)
        self.tail = nn.Sequential(ScaledConv2d(in_ch, num_feat, 3), leaky_relu())
        self.out = ScaledConv2d(num_feat, num_out_ch, 3).zero_()

    def forward(self, x, return_aux=False):
        check_image_input(x, self.num_in_ch, type(self).__name__)
        x_pad, size = pad_to_multiple(x, self.multiple, min_size=self.min_size)
        inp = x_pad * 2 - 1  # the net works on images in [-1, 1]
        feat = self.head(inp)
        skips = []
        for down in self.downs:
            feat = down(feat)
            skips.append(feat)
        feat = self.blocks(self.project(feat))
        for up, skip in zip(self.ups, reversed(skips)):
            feat = up(torch.cat([feat, skip], 1))
        out = inp + self.out(self.tail(feat))
        out = crop_to((out + 1) / 2, size)
        return (out, {}) if return_aux else out  # no auxiliary outputs
