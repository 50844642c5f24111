"""MLFANet: stage 2 (multi-level feature aggregation) of Brehm, Scherer and Lienhart, "High-Resolution Dual-Stage
Multi-Level Feature Aggregation for Single Image and Video Deblurring" (NTIRE 2020 workshops).

It restores frame t from frames t-1, t, t+1 that stage 1 (:class:`~deblurzoo.archs.atrous_arch.AtrousNet`) has
already deblurred, aggregating them at every resolution so that large motions are matched at coarse levels and fine
detail at fine ones (the paper's Figure 5; DESIGN.md):

1. a shared-weight encoder per frame: a 7x7 conv (``num_feat``, 32) and ``num_level`` (4) stride-2 convs, level
   ``l`` having ``num_feat * 2**l`` channels (64, 128, 256, 512);
2. at every level (full resolution included) each pixel's feature vector is scaled to unit length and every frame's
   vectors are multiplied by their dot product with frame t's, i.e. their cosine similarity (1 where a neighbour's
   feature equals t's, -1 where it is opposite; the paper keeps the sign rather than squashing it to [0, 1] as EDVR
   does); the weighted features are concatenated and fused by one 3x3 conv and ``num_block`` (3) residual blocks;
3. top-down: each level, up-sampled by a 3x3 stride-2 transposed conv, is added to the next finer fused level; a 3x3
   conv maps full resolution to a residual on frame t.

Convs as in AtrousNet: LeakyReLU (0.2) after every conv but the output one, a learned per-channel scale instead of
normalisation, reflection padding, images in [-1, 1] inside; inputs are padded to a multiple of ``2**num_level`` (16)
and cropped back. The output conv starts at zero: the untrained net returns its centre frame, i.e. stage 1's result.

``num_frame=1`` is the paper's single-image ablation (Table 2, "stage 2 single": the same net with the t-1 and t+1
feature extraction removed); it also takes plain (b, 3, h, w) images.
"""
import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from .arch_util import ScaledConv2d, ScaledConvTranspose2d, ScaledResBlock, crop_to, leaky_relu, pad_to_multiple
from .protocol import ArchProtocol


def cosine_weighted(feats, center):
    """Unit-length feature vectors of every frame, each scaled by its cosine similarity to frame ``center``'s.

    Args:
        feats (Tensor): (b, t, c, h, w) features of t frames.
        center (int): Index of the reference frame.

    Returns:
        tuple[Tensor, Tensor]: the weighted unit features (b, t, c, h, w) and the weights (b, t, 1, h, w), in [-1, 1]
        (the reference frame's are 1).
    """
    unit = F.normalize(feats, dim=2)
    weights = (unit * unit[:, center:center + 1]).sum(2, keepdim=True)
    return unit * weights, weights


@ARCH_REGISTRY.register()
class MLFANet(nn.Module):
    """Multi-level feature aggregation over ``num_frame`` stage-1 outputs (see the module docstring).

    Takes (b, num_frame, 3, h, w) (frame ``num_frame // 2`` is restored) and returns (b, 3, h, w). Keyword arguments
    equal YAML keys.

    Args:
        num_in_ch (int): Channels of a frame. Default: 3.
        num_out_ch (int): Output channels (equal to ``num_in_ch``: a residual on the centre frame). Default: 3.
        num_frame (int): Frames in (odd); 1 is the single-image ablation. Default: 3.
        num_feat (int): Width of the full-resolution level; level ``l`` has ``num_feat * 2**l``. Default: 32.
        num_level (int): Stride-2 levels below full resolution (the input is padded to ``2**num_level``). Default: 4.
        num_block (int): Residual blocks after each level's fusion conv. Default: 3.
        head_kernel (int): Kernel of the first conv. Default: 7.
    """

    protocol = ArchProtocol('window')

    def __init__(self, num_in_ch=3, num_out_ch=3, num_frame=3, num_feat=32, num_level=4, num_block=3, head_kernel=7):
        super().__init__()
        if num_out_ch != num_in_ch:
            raise ValueError(f'MLFANet predicts a residual: num_out_ch ({num_out_ch}) must equal num_in_ch '
                             f'({num_in_ch})')
        if num_frame < 1 or num_frame % 2 != 1:
            raise ValueError(f'MLFANet: num_frame must be odd (frames t-k..t+k), got {num_frame}')
        self.num_in_ch = num_in_ch
        self.num_frame = num_frame  # read by VideoDeblurModel: a window net
        self.center = num_frame // 2
        self.multiple = 2**num_level
        self.min_size = max(head_kernel // 2 + 1, 2 * self.multiple)  # every level at least 2x2 for reflection
        widths = [num_feat * 2**level for level in range(num_level + 1)]
        self.encoder = nn.ModuleList([nn.Sequential(ScaledConv2d(num_in_ch, num_feat, head_kernel), leaky_relu())])
        self.encoder.extend(
            nn.Sequential(ScaledConv2d(widths[i], widths[i + 1], 3, stride=2), leaky_relu()) for i in range(num_level))
        self.fusions = nn.ModuleList(  # per level: one conv over the frames' weighted features, residual blocks
            nn.Sequential(ScaledConv2d(num_frame * c, c, 3), leaky_relu(), *map(ScaledResBlock, [c] * num_block))
            for c in widths)
        self.ups = nn.ModuleList(
            nn.Sequential(ScaledConvTranspose2d(widths[i + 1], widths[i]), leaky_relu()) for i in range(num_level))
        self.out = ScaledConv2d(num_feat, num_out_ch, 3).zero_()

    def _frames(self, x):
        if torch.is_tensor(x) and x.dim() == 4 and self.num_frame == 1:
            x = x.unsqueeze(1)
        if not torch.is_tensor(x) or x.dim() != 5 or x.shape[1] != self.num_frame or x.shape[2] != self.num_in_ch:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f'MLFANet expects a (batch, {self.num_frame}, {self.num_in_ch}, height, width) clip, '
                             f'got {shape}')
        return x

    def forward(self, x, return_aux=False):
        x = self._frames(x)
        b, t = x.shape[:2]
        x_pad, size = pad_to_multiple(x, self.multiple, min_size=self.min_size)
        inp = x_pad * 2 - 1  # the net works on images in [-1, 1]
        feat = inp.flatten(0, 1)  # every frame through the shared encoder at once
        levels = []
        for layer in self.encoder:
            feat = layer(feat)
            levels.append(feat)
        net = None
        for level in range(len(levels) - 1, -1, -1):
            feats = levels[level]
            weighted, _ = cosine_weighted(feats.view(b, t, *feats.shape[1:]), self.center)
            fused = self.fusions[level](weighted.flatten(1, 2))
            net = fused if net is None else fused + self.ups[level](net)
        out = inp[:, self.center] + self.out(net)
        out = crop_to((out + 1) / 2, size)
        return (out, {}) if return_aux else out  # no auxiliary outputs
