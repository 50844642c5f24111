"""A DMPHN-style baseline (Zhang et al., CVPR 2019) with SAPHNet's adaptive sampling (paper 003, Table VI).

Three encoder-decoder stages on 4, 2 and 1 patches built from plain residual conv blocks -- no attention, no
pixel-dependent filtering -- on the same :class:`MultiPatchHierarchy` and :class:`PixelSampler` as SAPHNet, so the
adaptive sampler's effect can be measured on a generic CNN (``sampling: uniform`` is DMPHN_U, ``adaptive`` DMPHN_NU).
It is also the worked example of wrapping an encoder-decoder with adaptive sampling: a block on a level's tokens
(:class:`TokenResBlock`), the hierarchy built from it, and a forward of a few lines.
Departure from Table VI: three stages (1-2-4) instead of DMPHN's four (1-2-4-8), as in SAPHNet.
"""
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from .patch_hierarchy import PATCHES, MultiPatchHierarchy, merge_patches, split_patches
from .protocol import ArchProtocol
from .token_ops import TokenConv


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
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels; equal to ``num_in_ch`` (residual stages). Default: 3.
        num_feat (int): Level-0 width (DMPHN: 32); level l has num_feat * 2**l. Default: 32.
        num_block (Sequence[int]): Residual blocks per level in each encoder and decoder (DMPHN: 2).
            Default: (2, 2, 2).
        stage_supervision (bool): Return the earlier stages' outputs in ``aux`` for their losses. Default: False
            (DMPHN supervises the final output only).
        sampling (str): 'uniform' (DMPHN) or 'adaptive'. Default: 'adaptive'.
        sample_ratio (float): Sampled pixels relative to the uniform grid. Default: 1.0.
        sampler_feat (int): Hidden width of the probability heads. Default: 32.
    """

    protocol = ArchProtocol('image', sampling=True)

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=32,
                 num_block=(2, 2, 2),
                 stage_supervision=False,
                 sampling='adaptive',
                 sample_ratio=1.0,
                 sampler_feat=32):
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, lambda width, level, decoder: TokenResBlock(width),
                         stage_supervision, sampling, sample_ratio, sampler_feat)

    def forward(self, x, policy=None, return_aux=False, return_masks=False, stage1=None):
        """(b, c, h, w) -> the restored image; ``(image, aux)`` with ``return_aux`` (see :class:`MultiPatchHierarchy`).
        Stages exchange features through the level-0 skip only, as in DMPHN."""
        x, policy, record = self.start(x, policy, return_aux, return_masks)
        estimate, feat = x, None
        for stage, (net, num) in enumerate(zip(self.stages, PATCHES)):
            inp = split_patches(estimate, num)
            grids = self.sample_stage(stage, feat, inp, num, policy, record)
            if stage == 0 and stage1 is not None:  # an earlier pass's stage 1 on the same x
                estimate, feat = stage1
            else:
                maps = net.encode(inp, grids, None if feat is None else split_patches(feat, num))
                residual, level0 = net.decode(maps)
                estimate, feat = estimate + merge_patches(residual, num), merge_patches(level0, num)
            record.add_stage(estimate, grids, num, (estimate, feat))
        return record.result(self.stage_supervision, return_aux)
