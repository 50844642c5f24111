"""Encoder-decoders on adaptively sampled levels, stacked as a DMPHN-style multi-patch hierarchy (paper 003, SAPHNet,
Sec. 3.1 and Fig. 2), as pieces any arch can use (the grids are in ``sample_grid.py``, the token ops in
``token_ops.py``, the sampler in ``adaptive_sampling.py``).

- :class:`AdaptiveEncoderDecoder`: one stage; level 0 on every pixel, the coarser levels on given grids.
- :func:`split_patches` / :func:`merge_patches` / :func:`pair_patch_tokens`: the 4-2-1 patch layout of the stages.
- :class:`MultiPatchHierarchy`: three stages and their two pixel samplers, with what a hierarchy's forward needs
  (:meth:`~MultiPatchHierarchy.sample_stage`, :class:`StageRecord`). The forwards themselves live in the archs:
  ``DMPHN.forward`` (``dmphn_arch.py``) is the plain worked example, ``SAPHNet.forward`` (``saphn_arch.py``) adds the
  paper's cross-stage attention.

Output convention of the hierarchies (every deblurzoo arch): ``net(x)`` returns the image in every mode;
``net(x, return_aux=True)`` returns ``(image, aux)``, ``aux`` a dict (:meth:`StageRecord.result`).
"""
from torch import nn

from .adaptive_sampling import POLICIES, PixelSampler
from .arch_util import check_image_input, crop_to, pad_to_multiple, zero_module
from .sample_grid import LevelMap, SampleGrid, make_fallback
from .token_ops import TokenConv, scatter_to

PATCHES = (4, 2, 1)  # patches per stage, bottom to top (DMPHN 1-2-4)
_LAYOUT = {1: (1, 1), 2: (2, 1), 4: (2, 2)}  # patches -> (rows, cols)

# ------------------------------------------------------------------------------------------------- encoder-decoder


class AdaptiveEncoderDecoder(nn.Module):
    """An encoder-decoder whose coarser levels live on given grids (uniform lattices or sampled pixels).

    Level 0 works on every pixel; level ``l`` has ``num_feat * 2**l`` channels. Downsampling is a 3x3 conv evaluated at
    the coarser level's pixels; upsampling projects the coarser tokens, scatters them back among the finer level's
    pixels (the others keep the encoder skip) and merges with the skip by a 3x3 conv (paper 003, Sec. 3.1).

    Args:
        num_in_ch (int): Input channels.
        num_out_ch (int): Output channels.
        num_feat (int): Level-0 width.
        num_block (Sequence[int]): Blocks per level, in the encoder and again in the decoder.
        block (callable): ``block(width, level, decoder) -> module`` with ``forward(level_map, enc=None) -> tokens``
            (``enc``: the encoder's :class:`LevelMap` of that level, for decoder blocks).
        sampled (bool): Whether its coarser levels may be sampled adaptively (builds the skip projections that
            unsampled pixels read). Default: True.
    """

    def __init__(self, num_in_ch, num_out_ch, num_feat, num_block, block, sampled=True):
        super().__init__()
        widths = [num_feat * 2**level for level in range(len(num_block))]
        self.widths = widths
        self.num_levels = len(widths)
        self.conv_in = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        levels = list(enumerate(zip(widths, num_block)))
        self.encoders = nn.ModuleList(nn.ModuleList(block(c, lvl, False) for _ in range(n)) for lvl, (c, n) in levels)
        self.decoders = nn.ModuleList(nn.ModuleList(block(c, lvl, True) for _ in range(n)) for lvl, (c, n) in levels)
        self.down = nn.ModuleList(TokenConv(widths[i], widths[i + 1]) for i in range(self.num_levels - 1))
        self.sampled = sampled
        if sampled:
            self.skip_proj = nn.ModuleList(nn.Linear(widths[i], widths[i + 1]) for i in range(self.num_levels - 1))
        self.up = nn.ModuleList(nn.Linear(widths[i + 1], widths[i]) for i in range(self.num_levels - 1))
        self.merge = nn.ModuleList(TokenConv(2 * widths[i], widths[i]) for i in range(self.num_levels - 1))
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.conv_out = zero_module(nn.Conv2d(num_feat, num_out_ch, 3, padding=1))  # a stage starts as identity

    def encode(self, x, grids, skip=None):
        """Encoder. ``x`` (b, c_in, H, W); ``grids`` the SampleGrids of levels 1..L-1; ``skip`` optional (b, c0, H, W)
        added to the level-0 features (the lower stage's, DMPHN-style). Returns the LevelMaps of every level."""
        b, _, h, w = x.shape
        if len(grids) != self.num_levels - 1:
            raise ValueError(f'expected {self.num_levels - 1} grids, got {len(grids)}')
        feat = self.act(self.conv_in(x))
        if skip is not None:
            feat = feat + skip
        level_map = LevelMap(feat.flatten(2).transpose(1, 2), SampleGrid.uniform(b, (h, w), 1, x.device))
        maps = []
        for level, blocks in enumerate(self.encoders):
            if level:
                finer, grid = maps[-1], grids[level - 1]
                tokens = self.act(self.down[level - 1](finer, anchors=grid))
                if self.sampled:
                    level_map = LevelMap(tokens, grid, make_fallback(self.skip_proj[level - 1], finer))
                elif grid.lattice is None:
                    raise ValueError('this encoder-decoder was built with sampled=False and takes uniform grids only')
                else:
                    level_map = LevelMap(tokens, grid)
            for blk in blocks:
                level_map = level_map.with_tokens(blk(level_map))
            maps.append(level_map)
        return maps

    def decode(self, maps, bottleneck=None):
        """Decoder from the encoder's LevelMaps (``bottleneck`` replaces the deepest tokens, e.g. after cross-stage
        attention). Returns (output (b, c_out, H, W), level-0 features (b, c0, H, W)). A coarser level's fallback
        features are freed once the decoder has merged it into the finer level (read again, they are recomputed)."""
        level_map = maps[-1] if bottleneck is None else maps[-1].with_tokens(bottleneck)
        for level in reversed(range(self.num_levels)):
            enc = maps[level]
            if level < self.num_levels - 1:
                up = scatter_to(enc.tokens, enc.grid, self.up[level](level_map.tokens), level_map.grid)
                merged = self.merge[level]((enc.with_tokens(up), enc))  # the conv of cat([up, skip]), not built
                level_map = enc.with_tokens(self.act(merged))
                if maps[level + 1].fallback is not None:  # nothing reads the coarser level any more
                    maps[level + 1].fallback.release()
            for blk in self.decoders[level]:
                level_map = level_map.with_tokens(blk(level_map, enc=enc))
        feat = level_map.dense()
        return self.conv_out(feat), feat


# --------------------------------------------------------------------------------------------- multi-patch hierarchy


def split_patches(x, num):
    """(b, c, h, w) -> (num * b, c, h / rows, w / cols), patches ordered (row, col, image)."""
    rows, cols = _LAYOUT[num]
    b, c, h, w = x.shape
    x = x.view(b, c, rows, h // rows, cols, w // cols).permute(2, 4, 0, 1, 3, 5)
    return x.reshape(num * b, c, h // rows, w // cols)


def merge_patches(x, num):
    """Inverse of :func:`split_patches`."""
    rows, cols = _LAYOUT[num]
    nb, c, h, w = x.shape
    b = nb // num
    x = x.view(rows, cols, b, c, h, w).permute(2, 3, 0, 4, 1, 5)
    return x.reshape(b, c, rows * h, cols * w)


def pair_patch_tokens(tokens, num):
    """Tokens of ``num`` patches (num * b, n, c) -> those of the ``num // 2`` patches above them (num // 2 * b, 2n, c):
    each upper patch gets the tokens of the two lower patches it covers (for cross-stage attention)."""
    nb, n, c = tokens.shape
    b = nb // num
    half = num // 2
    return tokens.view(half, 2, b, n, c).permute(0, 2, 1, 3, 4).reshape(half * b, 2 * n, c)


class StageRecord:
    """What a hierarchy's forward collects per stage for ``aux`` (see :meth:`result`).

    Args:
        size (tuple[int, int]): The unpadded (H, W), to crop to.
        masks (bool): Collect the masks of the pixels each level processed.
    """

    def __init__(self, size, masks=False):
        self.size = size
        self.outputs, self.sampling, self.masks = [], [], [] if masks else None

    def add_sampling(self, info, num):
        """The sampling record of a sampled stage, from its ``num`` patches to whole images."""
        b = info['budget'].shape[0] // num
        merged = {k: crop_to(merge_patches(v, num), self.size) for k, v in info.items() if v.dim() == 4}
        merged.update({k: v.view(num, b).sum(0) for k, v in info.items() if v.dim() == 1})
        self.sampling.append(merged)

    def add_stage(self, estimate, grids, num, state):
        """A stage's estimate, grids and ``state`` (what the next stage reads; stage 1's is returned for reuse)."""
        if not self.outputs:
            self.stage1 = state
        self.outputs.append(estimate)
        if self.masks is not None:
            self.masks.append([crop_to(merge_patches(grid.mask(), num), self.size) for grid in grids])

    def result(self, stage_supervision, return_aux):
        """The image, or ``(image, aux)`` with ``return_aux``: ``aux['stage_outputs']`` the earlier stages' estimates
        (when ``stage_supervision``, else empty), ``aux['sampling']`` per sampled stage ``prob``, ``log_prob``,
        ``selected`` (b, 1, H, W) and ``num_selected``, ``budget`` (b,), and with masks ``aux['masks']`` per stage the
        (b, 1, H, W) masks of the pixels each coarser level processed; ``aux['stage1']`` what stage 1 handed on, which
        another pass on the same input may take as ``stage1`` instead of running stage 1 again (stage 1 always samples
        uniformly: e.g. the greedy baseline pass of the joint training phase)."""
        image = crop_to(self.outputs[-1], self.size)
        if not return_aux:
            return image
        earlier = [crop_to(o, self.size) for o in self.outputs[:-1]] if stage_supervision else []
        aux = dict(stage_outputs=earlier, sampling=self.sampling, stage1=self.stage1)
        if self.masks is not None:
            aux['masks'] = self.masks
        return image, aux


class MultiPatchHierarchy(nn.Module):
    """Three encoder-decoder stages on 4, 2 and 1 patches; each stage refines the previous estimate residually.

    ``__init__`` builds ``self.stages`` (three :class:`AdaptiveEncoderDecoder` from a subclass's block factory) and,
    for ``sampling='adaptive'``, ``self.samplers`` (two :class:`PixelSampler`, stages 2 and 3). Stage ``s > 1``
    receives the previous estimate as input, the previous stage's level-0 features as a skip (added, as in DMPHN) and,
    when adaptive, samples its pixels from a probability map computed on those features (:meth:`sample_stage`).
    Subclasses write ``forward(x, policy=None, return_aux=False, return_masks=False, stage1=None)`` with these
    pieces: ``policy`` is 'uniform', 'sample' or 'greedy' for the sampled stages, None meaning 'sample' in training
    mode and 'greedy' in eval mode ('uniform' always for uniform nets); ``stage1`` is ``aux['stage1']`` of an earlier
    pass on the same ``x``; the result is :meth:`StageRecord.result`.
    """

    multiple = 8  # two patch splits, then two stride-2 levels

    def __init__(self, num_in_ch, num_out_ch, num_feat, num_block, block, stage_supervision, sampling, sample_ratio,
                 sampler_feat):
        super().__init__()
        if sampling not in ('adaptive', 'uniform'):
            raise ValueError(f"sampling must be 'adaptive' or 'uniform', got '{sampling}'")
        if num_out_ch != num_in_ch:
            raise ValueError(f'{type(self).__name__}: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch}): '
                             'every stage refines the image residually')
        adaptive = sampling == 'adaptive'
        num_block = tuple(num_block)
        self.num_in_ch = num_in_ch
        self.stage_supervision = stage_supervision
        self.stages = nn.ModuleList(
            AdaptiveEncoderDecoder(num_in_ch, num_out_ch, num_feat, num_block, block, sampled=stage > 0 and adaptive)
            for stage in range(3))
        self.samplers = nn.ModuleList(
            PixelSampler(num_feat, sampler_feat, len(num_block), sample_ratio) for _ in range(2)) if adaptive else None

    @property
    def adaptive(self):
        return self.samplers is not None

    def start(self, x, policy, return_aux, return_masks):
        """Checks the call; returns (padded x, the policy in force, a :class:`StageRecord`)."""
        check_image_input(x, self.num_in_ch, type(self).__name__)
        if return_masks and not return_aux:
            raise ValueError('return_masks=True needs return_aux=True: the masks come back in aux')
        if not self.adaptive:
            if policy not in (None, 'uniform'):
                raise ValueError(f"policy '{policy}' needs adaptive sampling; this net samples uniformly")
            policy = 'uniform'
        elif policy is None:
            policy = 'sample' if self.training else 'greedy'
        elif policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got '{policy}'")
        x, size = pad_to_multiple(x, self.multiple)
        return x, policy, StageRecord(size, return_masks)

    def sample_stage(self, stage, feat, inp, num, policy, record):
        """The grids of ``stage``'s patches ``inp`` (num * b, c, h, w): uniform lattices for stage 1 and the 'uniform'
        policy, else chosen by the stage's sampler from the previous stage's level-0 features ``feat`` (b, c0, H, W)
        -- detached: the reward loss trains the sampler alone (paper 003, Eq. 6) -- computed on the whole image
        (patch borders are not image borders) and chosen per patch; the sampling goes into ``record``."""
        if stage == 0 or policy == 'uniform':
            net = self.stages[stage]
            return [SampleGrid.uniform(inp.shape[0], inp.shape[-2:], 2**level, inp.device)
                    for level in range(1, net.num_levels)]
        sampler = self.samplers[stage - 1]
        grids, info = sampler.choose(split_patches(sampler.head(feat.detach()), num), policy)
        record.add_sampling(info, num)
        return grids
