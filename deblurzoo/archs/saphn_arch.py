"""SAPHNet: Spatially-Attentive Patch-Hierarchical Network with adaptive sampling (paper 003, Suin, Purohit,
Rajagopalan, TPAMI).

Three encoder-decoder stages on 4, 2 and 1 patches (DMPHN 1-2-4), each built from content-aware processing modules
(CPM): a global branch of efficient attention (self-attention in encoders; decoders add cross encoder-decoder
attention) and a local branch of pixel-dependent filtering (PDF), fused per pixel by a sigmoid mask. Stages 2 and 3
process pixels chosen by a probability head on the previous stage's features (adaptive sampling, trained by
REINFORCE: ``AdaptiveSamplingRewardLoss``). :meth:`SAPHNet.forward` is the paper's Fig. 2; the reusable pieces live in
``sample_grid.py`` (grids), ``token_ops.py`` (token convs), ``adaptive_sampling.py`` (the sampler) and
``patch_hierarchy.py`` (the encoder-decoder, the patch layout).
"""
import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from .arch_util import zero_module
from .patch_hierarchy import PATCHES, MultiPatchHierarchy, merge_patches, pair_patch_tokens, split_patches
from .protocol import ArchProtocol
from .token_ops import TokenConv, pixel_dependent_filter


class EfficientAttention(nn.Module):
    """Attention linear in the number of pixels (paper 003, Eqs. 10-16).

    Step 1 (:meth:`descriptors`): ``A = softmax over pixels(Linear(F_u))`` gives ``num_maps`` spatial attention maps
    and ``G = F_u^T A`` (c x num_maps) global descriptors, from the *uniformly* sampled features ``F_u`` ("for stage 1,
    we utilize the uniformly sampled feature", "to cover the whole scene and not any particular object or area",
    Sec. 3.2.2). Step 2: ``B = softmax over maps(Linear(F))`` per (sampled) pixel and ``out = B G^T``. A spatial mask
    ``sigmoid(Linear(F))`` (per pixel) and a channel mask ``sigmoid(Linear(mean F))`` (per channel) gate the result.
    The caller gives ``source``: the level's own features on its uniform lattice (self-attention), or another map's
    (cross encoder-decoder and cross-stage attention: the source is attended, the query's features decide how).

    Args:
        num_feat (int): Channels c.
        num_maps (int): Attention maps c'.
        masks (bool): Use the spatial and channel masks (Table IV). Default: True.
    """

    def __init__(self, num_feat, num_maps, masks=True):
        super().__init__()
        self.to_maps = nn.Linear(num_feat, num_maps)
        self.to_weights = nn.Linear(num_feat, num_maps)
        self.masks = masks
        if masks:
            self.spatial_mask = nn.Linear(num_feat, 1)
            self.channel_mask = nn.Linear(num_feat, num_feat)

    def descriptors(self, source):
        """Step 1: (b, m, c) source tokens -> (b, c, c') global descriptors."""
        maps = torch.softmax(self.to_maps(source), dim=1)  # (b, m, c'): each map sums to 1 over the pixels
        return source.transpose(1, 2) @ maps

    def forward(self, x, source=None):
        """x: (b, n, c) queries; source: (b, m, c) tokens step 1 reads (default x). Returns (b, n, c)."""
        desc = self.descriptors(x if source is None else source)  # (b, c, c')
        weights = torch.softmax(self.to_weights(x), dim=2)  # (b, n, c'): per pixel, over the maps
        out = weights @ desc.transpose(1, 2)  # (b, n, c)
        if self.masks:
            out = out * torch.sigmoid(self.spatial_mask(x)) * torch.sigmoid(self.channel_mask(x.mean(1, keepdim=True)))
        return out


class PixelDependentFilter(nn.Module):
    """Pixel-dependent filtering (paper 003, Eqs. 17-18): ``y(p) = sum_j K_p(j) W(j) x(p + p_j + dp_j)``.

    A meta conv predicts, per pixel, a k x k kernel ``K_p = 2 sigmoid(.)`` and offsets ``dp = max_offset * tanh(.)``,
    both shared across channels; ``W`` is an ordinary learned conv weight. The meta conv starts at zero, so the module
    starts as the plain convolution ``W``. On sampled levels each pixel's neighbourhood is read from the full-resolution
    map around it.

    Args:
        num_feat (int): Channels.
        kernel_size (int): k. Default: 3.
        max_offset (float): Bound of the offsets, in the level's pixels. Default: 3.
        offsets (bool): Predict offsets (Table IV: adaptive neighbourhood); False keeps the regular taps. Default: True.
    """

    def __init__(self, num_feat, kernel_size=3, max_offset=3.0, offsets=True):
        super().__init__()
        k2 = kernel_size * kernel_size
        conv = nn.Conv2d(num_feat, num_feat, kernel_size)  # for its initialisation
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone())
        self.meta = zero_module(TokenConv(num_feat, k2 * (3 if offsets else 1), 3))
        self.k2 = k2
        self.max_offset = max_offset
        self.offsets = offsets

    def forward(self, level_map):
        meta = self.meta(level_map)  # (b, n, k2 [+ 2 k2])
        kernel = 2 * torch.sigmoid(meta[..., :self.k2])
        offsets = None
        if self.offsets:
            b, n, _ = meta.shape
            offsets = self.max_offset * torch.tanh(meta[..., self.k2:]).reshape(b, n, self.k2, 2)
        return pixel_dependent_filter(level_map, self.weight, self.bias, kernel, offsets)


class ContentAwareModule(nn.Module):
    """CPM (paper 003, Sec. 3.2): ``x + Linear(act(m * global + (1 - m) * local))``, ``m = sigmoid(Linear(x))``.

    global = efficient self-attention (+ cross encoder-decoder attention in decoders, attending the encoder's map of the
    level); local = PDF (a plain 3x3 conv when ``pdf`` is off). Without attention the module is
    ``x + Linear(act(local))``. Step 1 of every attention reads its source on the uniform lattice
    (:meth:`LevelMap.uniform_tokens`), step 2 the level's own (possibly sampled) pixels.
    """

    def __init__(self, num_feat, decoder, kernel_size, attn_ratio, max_offset, attention, pdf, pdf_offsets,
                 cross_attention, masks):
        super().__init__()
        num_maps = max(1, int(num_feat * attn_ratio))
        self.attn = EfficientAttention(num_feat, num_maps, masks) if attention else None
        with_cross = attention and decoder and cross_attention
        self.cross = EfficientAttention(num_feat, num_maps, masks) if with_cross else None
        self.fuse = nn.Linear(num_feat, 1) if attention else None
        if pdf:
            self.local = PixelDependentFilter(num_feat, kernel_size, max_offset, pdf_offsets)
        else:
            self.local = TokenConv(num_feat, num_feat, kernel_size)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.proj = nn.Linear(num_feat, num_feat)

    def forward(self, level_map, enc=None):
        x = level_map.tokens  # (b, n, c)
        out = self.local(level_map)
        if self.attn is not None:
            glob = self.attn(x, level_map.uniform_tokens())
            if self.cross is not None:
                glob = glob + self.cross(x, enc.uniform_tokens())
            mask = torch.sigmoid(self.fuse(x))  # (b, n, 1)
            out = mask * glob + (1 - mask) * out
        return x + self.proj(self.act(out))


class CrossStageAttention(nn.Module):
    """``tokens + attention(tokens, lower stage's tokens)``: the lower stage's bottleneck is attended, the upper stage
    decides how (paper 003, Sec. 3.2.3)."""

    def __init__(self, num_feat, num_maps, masks):
        super().__init__()
        self.attn = EfficientAttention(num_feat, num_maps, masks)

    def forward(self, tokens, source):
        return tokens + self.attn(tokens, source)


@ARCH_REGISTRY.register()
class SAPHNet(MultiPatchHierarchy):
    """SAPHNet (paper 003).

    The paper's text lost its widths and kernel sizes; ours: level widths 50/100/200, CPMs per level (1, 1, 6) in
    every encoder and decoder, PDF 3x3 with offsets bounded by 3 pixels of the level, half as many attention maps as
    channels, probability heads of width 32. That gives 23.4M parameters and 140.5 G multiply-accumulates at 256x256
    with uniform sampling (FlopCounterMode: ``scripts/model_cost.py``), against the paper's Table III: 23M and 140 G.
    Table IV switches: ``attention``, ``pdf``, ``pdf_offsets``, ``cross_attention`` (encoder-decoder),
    ``cross_stage_attention``, ``masks``, ``stage_supervision``, ``sampling`` ('adaptive' or 'uniform'); Table V:
    ``sample_ratio``.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels; equal to ``num_in_ch`` (residual stages). Default: 3.
        num_feat (int): Level-0 width; level l has num_feat * 2**l. Default: 50.
        num_block (Sequence[int]): CPMs per level in each encoder and each decoder. Default: (1, 1, 6).
        kernel_size (int): PDF kernel size k. Default: 3.
        attn_ratio (float): Attention maps per channel. Default: 0.5.
        max_offset (float): Bound of the PDF offsets. Default: 3.0.
        attention (bool): Global attention branch. Default: True.
        pdf (bool): Pixel-dependent filtering (else a plain conv). Default: True.
        pdf_offsets (bool): PDF predicts offsets. Default: True.
        cross_attention (bool): Cross encoder-decoder attention in decoders. Default: True.
        cross_stage_attention (bool): Cross-stage attention at the bottlenecks. Default: True.
        masks (bool): Spatial and channel masks of the attention. Default: True.
        stage_supervision (bool): Return the earlier stages' outputs in ``aux`` for their losses. Default: True.
        sampling (str): 'adaptive' (stages 2 and 3) or 'uniform'. Default: 'adaptive'.
        sample_ratio (float): Sampled pixels relative to the uniform grid. Default: 1.0.
        sampler_feat (int): Hidden width of the probability heads. Default: 32.
    """

    protocol = ArchProtocol('image', sampling=True)

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=50,
                 num_block=(1, 1, 6),
                 kernel_size=3,
                 attn_ratio=0.5,
                 max_offset=3.0,
                 attention=True,
                 pdf=True,
                 pdf_offsets=True,
                 cross_attention=True,
                 cross_stage_attention=True,
                 masks=True,
                 stage_supervision=True,
                 sampling='adaptive',
                 sample_ratio=1.0,
                 sampler_feat=32):

        def block(width, level, decoder):
            return ContentAwareModule(width, decoder, kernel_size, attn_ratio, max_offset, attention, pdf,
                                      pdf_offsets, cross_attention, masks)

        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, block, stage_supervision, sampling, sample_ratio,
                         sampler_feat)
        deep = num_feat * 2**(len(num_block) - 1)
        self.cross_stage = nn.ModuleList(
            CrossStageAttention(deep, max(1, int(deep * attn_ratio)), masks)
            for _ in range(2)) if cross_stage_attention else None

    def forward(self, x, policy=None, return_aux=False, return_masks=False, stage1=None):
        """Paper 003, Fig. 2: three stages on 4, 2 and 1 patches, each refining the previous estimate.

        Args:
            x (Tensor): (b, c, h, w) blurry image, any h and w.
            policy (str | None): Sampling of stages 2 and 3: 'uniform', 'sample' or 'greedy'; None: 'sample' in
                training mode, 'greedy' in eval mode. Default: None.
            return_aux (bool): Also return ``aux`` (stage outputs, sampling records). Default: False.
            return_masks (bool): Add ``aux['masks']``, the pixels each level processed (needs ``return_aux``).
            stage1 (tuple | None): ``aux['stage1']`` of an earlier pass on the same ``x``: stage 1 is not run again
                (it samples uniformly whatever the policy). Default: None.

        Returns:
            Tensor | tuple[Tensor, dict]: The restored image, or ``(image, aux)`` (see :class:`StageRecord`).
        """
        x, policy, record = self.start(x, policy, return_aux, return_masks)
        estimate, feat, lower = x, None, None
        for stage, num in enumerate(PATCHES):
            inp = split_patches(estimate, num)
            # stage 1 samples uniformly; stages 2 and 3 sample their pixels from the previous stage's features
            grids = self.sample_stage(stage, feat, inp, num, policy, record)
            if stage == 0 and stage1 is not None:  # an earlier pass's stage 1 on the same x
                estimate, feat, lower = stage1
                record.add_stage(estimate, grids, num, stage1)
                continue
            estimate, feat, lower = self.run_stage(stage, inp, grids, estimate, feat, lower, num)
            record.add_stage(estimate, grids, num, (estimate, feat, lower))
        return record.result(self.stage_supervision, return_aux)

    def run_stage(self, stage, inp, grids, estimate, feat, lower, num):
        """One encoder-decoder on ``num`` patches ``inp``: (estimate, level-0 features, uniform bottleneck tokens)
        for the next stage (what it does not return -- its level maps -- is freed before the next stage runs)."""
        net = self.stages[stage]
        maps = net.encode(inp, grids, None if feat is None else split_patches(feat, num))
        bottleneck = maps[-1].tokens
        if lower is not None and self.cross_stage is not None:  # the lower stage's bottleneck is attended
            bottleneck = self.cross_stage[stage - 1](bottleneck, pair_patch_tokens(lower, num * 2))
        lower = maps[-1].with_tokens(bottleneck).uniform_tokens()  # attention step 1 reads the uniform lattice
        residual, level0 = net.decode(maps, bottleneck)
        return estimate + merge_patches(residual, num), merge_patches(level0, num), lower
