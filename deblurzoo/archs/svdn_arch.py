"""SVDN: Yuan, Su, Ma, "Efficient Dynamic Scene Deblurring Using Spatially Variant Deconvolution Network with Optical
Flow Guided Training", CVPR 2020 (``../shared/papers/001_f8374c53d815a6e8.txt``).

backbone (one stride-2 downsampling, dilated 3x3 convs at rates 1, 2, 4, fusion module) -> blur feature and content
feature -> neck (two modulated deformable 5x5 convs whose offsets/masks come from the blur feature) -> head
(transposed conv x2, conv to RGB) + global skip. The paper's Figure 3 (the backbone's exact layer table) did not
survive; the widths below are our choice and land on the paper's "nearly 0.8M parameters" (3.1 MB): 788,188 with the
defaults.
"""
import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from deblurzoo.ops import ModulatedDeformConv
from .arch_util import (ResidualBlock, check_image_input, conv3x3, crop_to, default_init_weights, pad_to_multiple,
                        zero_module)
from .protocol import ArchProtocol


class _DilatedBackbone(nn.Module):
    """conv -> stride-2 conv -> one residual block per dilation rate -> fusion (concat + 1x1 conv, sum skip)."""

    def __init__(self, num_in_ch, num_feat, dilations, num_conv, num_out_feat):
        super().__init__()
        self.head = nn.Sequential(
            conv3x3(num_in_ch, num_feat), nn.PReLU(num_feat),
            conv3x3(num_feat, num_feat, stride=2), nn.PReLU(num_feat))
        self.stages = nn.ModuleList(
            nn.Sequential(ResidualBlock(num_feat, d, num_conv), nn.PReLU(num_feat)) for d in dilations)
        self.fusion = nn.Conv2d(num_feat * (len(dilations) + 1), num_out_feat, 1)
        self.repeat = num_out_feat // num_feat

    def forward(self, x):
        feat = self.head(x)  # (b, c, h/2, w/2)
        feats = [feat]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return self.fusion(torch.cat(feats, 1)) + feat.repeat(1, self.repeat, 1, 1)  # (b, c * repeat, h/2, w/2)


class _DeconvNeck(nn.Module):
    """Feature deconvolution module: two stacked modulated deformable convs (Eq. 4-5).

    ``ow1 = Conv(blur)`` drives DCN1 on the content feature; ``ow2 = Conv(PReLU(Conv(PReLU(ow1))))`` drives DCN2 on
    DCN1's output. Offset/mask predictors start at zero (regular grid, masks 0.5).
    """

    def __init__(self, num_feat, kernel_size, backend):
        super().__init__()
        n = 3 * kernel_size * kernel_size  # 2 offsets + 1 mask per sampling point
        pad = kernel_size // 2
        self.conv_ow1 = zero_module(conv3x3(num_feat, n))
        self.conv_ow2 = nn.Sequential(nn.PReLU(n), conv3x3(n, n), nn.PReLU(n), zero_module(conv3x3(n, n)))
        self.dcn1 = ModulatedDeformConv(num_feat, num_feat, kernel_size, padding=pad, backend=backend)
        self.dcn2 = ModulatedDeformConv(num_feat, num_feat, kernel_size, padding=pad, backend=backend)
        self.act = nn.PReLU(num_feat)
        self.num_points = kernel_size * kernel_size

    def _split(self, ow):
        offset, mask = ow[:, :2 * self.num_points], ow[:, 2 * self.num_points:]
        return offset, torch.sigmoid(mask)

    def forward(self, blur_feat, content_feat):
        ow1 = self.conv_ow1(blur_feat)  # (b, 3k^2, h, w)
        ow2 = self.conv_ow2(ow1)
        offset1, mask1 = self._split(ow1)
        offset2, mask2 = self._split(ow2)
        feat = self.act(self.dcn1(content_feat, offset1, mask1))
        feat = self.act(self.dcn2(feat, offset2, mask2))
        return feat, offset1  # offset1: (b, 2k^2, h, w), DCN1's sampling offsets for the position loss


@ARCH_REGISTRY.register()
class SVDN(nn.Module):
    """Spatially variant deconvolution network.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels (must equal num_in_ch for the global skip). Default: 3.
        num_feat (int): Width of the backbone and neck, at half resolution. Default: 64.
        dilations (list[int]): Dilation rate of each backbone stage. Default: [1, 2, 4].
        num_conv (int): 3x3 convs per dilated stage (one residual block). Default: 3.
        deform_kernel_size (int): Kernel size of the two deformable convs (5: 25 sampling points). Default: 5.
        dilated (bool): Table 2 ablation: False sets every dilation rate to 1. Default: True.
        deform (bool): Table 2 ablation: False replaces the deformable neck by a residual block. Default: True.
        dcn_backend (str | None): Deformable-conv backend ('torchvision', 'pytorch', 'mmcv'); None: deblurzoo's
            default (``DEBLURZOO_DCN_BACKEND`` or the fastest exact one). Default: None.

    ``net(x)`` returns the output (b, 3, h, w) in every mode; ``net(x, return_aux=True)`` returns ``(output, aux)``,
    with ``deform=True`` ``aux['offsets']`` DCN1's sampling offsets (b, 2 * k * k, h/2, w/2) in torchvision's (dy, dx)
    layout, at half resolution, for :class:`~deblurzoo.losses.position_loss.PositionLoss` (else ``aux`` is empty).
    """

    protocol = ArchProtocol('image')

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=64,
                 dilations=(1, 2, 4),
                 num_conv=3,
                 deform_kernel_size=5,
                 dilated=True,
                 deform=True,
                 dcn_backend=None):
        super().__init__()
        if num_in_ch != num_out_ch:
            raise ValueError(f'SVDN: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch}) (global skip)')
        self.num_in_ch = num_in_ch
        self.deform = deform
        dilations = list(dilations) if dilated else [1] * len(dilations)
        # the fusion module's output splits into blur and content features when the neck needs both
        self.backbone = _DilatedBackbone(num_in_ch, num_feat, dilations, num_conv, num_feat * (2 if deform else 1))
        self.neck = _DeconvNeck(num_feat, deform_kernel_size, dcn_backend) if deform else ResidualBlock(num_feat)
        self.upsample = nn.Sequential(nn.ConvTranspose2d(num_feat, num_feat // 2, 4, 2, 1), nn.PReLU(num_feat // 2))
        self.conv_last = conv3x3(num_feat // 2, num_out_ch)
        # Xavier initialisation as in the paper, except the offset predictors (zero: start at the regular grid) and the
        # last conv (zero: the global skip starts as the identity, so training never begins below the blurry input)
        default_init_weights(self, 'xavier')
        zero_module(self.conv_last)
        if deform:
            for dcn in (self.neck.dcn1, self.neck.dcn2):
                nn.init.xavier_normal_(dcn.weight)
            zero_module(self.neck.conv_ow1)
            zero_module(self.neck.conv_ow2[-1])

    def forward(self, x, return_aux=False):
        check_image_input(x, self.num_in_ch, 'SVDN')
        x_pad, size = pad_to_multiple(x, 2)
        feat = self.backbone(x_pad)
        offset = None
        if self.deform:
            blur_feat, content_feat = feat.chunk(2, dim=1)
            feat, offset = self.neck(blur_feat, content_feat)
        else:
            feat = self.neck(feat)
        out = crop_to(x_pad + self.conv_last(self.upsample(feat)), size)
        if return_aux:
            return out, ({} if offset is None else {'offsets': offset})
        return out
