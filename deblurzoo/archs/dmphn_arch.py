"""A DMPHN-style baseline (Zhang et al., CVPR 2019) with SAPHNet's adaptive sampling (paper 003, Table VI).

Three encoder-decoder stages on 4, 2 and 1 patches built from plain residual conv blocks -- no attention, no
pixel-dependent filtering -- on the same :class:`MultiPatchHierarchy` and :class:`PixelSampler` as SAPHNet, so the
adaptive sampler's effect can be measured on a generic CNN (``sampling: uniform`` is DMPHN_U, ``adaptive`` DMPHN_NU).
It also serves as the worked example of wrapping an encoder-decoder with adaptive sampling (``adaptive_sampling.py``).
Departure from Table VI: three stages (1-2-4) instead of DMPHN's four (1-2-4-8), as in SAPHNet.
"""
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from .adaptive_sampling import MultiPatchHierarchy, TokenConv
from .protocol import ArchProtocol


class TokenResBlock(nn.Module):
    """``x + conv(act(conv(x)))`` with :class:`TokenConv` (DMPHN's residual block), on any level's grid."""

    def __init__(self, num_feat):
        super().__init__()
        self.conv1 = TokenConv(num_feat, num_feat)
        self.conv2 = TokenConv(num_feat, num_feat)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, level_map, enc=None):
        hidden = self.act(self.conv1(level_map))
        return level_map.tokens + self.conv2(level_map.with_tokens(hidden))


@ARCH_REGISTRY.register()
class DMPHN(MultiPatchHierarchy):
    """DMPHN-style 1-2-4 multi-patch network, optionally with adaptive sampling in stages 2 and 3.

    Args:
        num_in_ch (int): Image channels (input and output). Default: 3.
        num_feat (int): Level-0 width (DMPHN: 32); level l has num_feat * 2**l. Default: 32.
        num_blocks (Sequence[int]): Residual blocks per level in each encoder and decoder (DMPHN: 2).
            Default: (2, 2, 2).
        stage_supervision (bool): Return the earlier stages' outputs in training. Default: False (DMPHN supervises
            the final output only).
        sampling (str): 'uniform' (DMPHN) or 'adaptive'. Default: 'adaptive'.
        sample_ratio (float): Sampled pixels relative to the uniform grid. Default: 1.0.
        sampler_feat (int): Hidden width of the probability heads. Default: 32.
    """

    protocol = ArchProtocol('image', sampling=True)

    def __init__(self,
                 num_in_ch=3,
                 num_feat=32,
                 num_blocks=(2, 2, 2),
                 stage_supervision=False,
                 sampling='adaptive',
                 sample_ratio=1.0,
                 sampler_feat=32):
        super().__init__(num_in_ch, num_feat, num_blocks, lambda width, level, decoder: TokenResBlock(width),
                         stage_supervision, sampling, sample_ratio, sampler_feat)
        # stages exchange features through the level-0 skip only, as in DMPHN: no cross_stage modules
