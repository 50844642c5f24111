"""SARN: Purohit & Rajagopalan, "Spatially-Adaptive Residual Networks for Efficient Image and Video Deblurring"
(``../shared/papers/000_780eafa699bc6310.txt``), for single images (:class:`SARN`), stacks of frames
(:class:`SARNMulti`, the paper's "Ours-Multi") and videos (:class:`SARNRecurrent`, "Ours-Recurrent").

One residual encoder-decoder at a single scale, 3x3 convs only (SRN's layout without its scales and 5x5 filters):

    encoder   conv -> 3 ResBlocks (n) | s2 conv -> 3 ResBlocks (2n) | s2 conv -> 3 mid blocks (4n) -> self-attention
    decoder   3 mid blocks (4n) -> s2 deconv (+ skip) | 3 ResBlocks (2n) -> s2 deconv (+ skip) | 3 ResBlocks (n) -> conv
    output    input (the current frame) + the decoder's residual

The 6 mid blocks at 1/4 resolution are Deformable Residual Modules (:class:`DeformableResidualModule`) as far as
``num_drm`` says (the encoder's first); the rest are plain residual blocks. Table 3's model sizes follow from this
reading (each DRM adds only its offset conv, 20,754 parameters): with the defaults, Table 3's four variants (0 DRM +
SA, 3 DRM, 6 DRM, 6 DRM + SA) have 10.08, 10.30, 10.54 and 10.58 MB of float32 parameters (1 MB = 1e6 bytes) against
the paper's 10.7/10.9/11.2/11.2 MB, 5-6 % below it; the full SARN has 2,644,383 parameters (paper: 11.2 MB). The
paper gives no initialisation: convs are Xavier-initialised (as SRN's); the offset convs, the attention's output and
the last conv start at zero, so an untrained net returns its input.

Self-attention (:class:`SelfAttention`): the paper puts it on the encoder's output, "where the spatial resolution of
features is the smallest which leads to minimum additional computations", and reports 0.02 s per frame. Full
softmax attention over all h/4 x w/4 positions does not fit that claim at 720p (a 57,600 x 57,600 attention matrix,
cost quadratic in the pixels, 14x more positions than in 256-pixel training), so by default its keys and values are
pooled to a fixed 16 x 16 grid (``sa_kv_size``; SAGAN-style pooled keys/values): every position still attends to the
whole image, at a cost linear in the pixels. ``sa_kv_size: null`` restores full attention. MACs of one forward
(``torch.utils.flop_counter.FlopCounterMode``; deformable convs counted through the 'pytorch' backend)::

    python scripts/model_cost.py --arch SARN --size 720 1280 --part body.attention [--kwargs '{"sa_kv_size": null}']

    SARN, 2.64M parameters       256 x 256                      1280 x 720
    pooled (default)             23.6 G, attention 0.062 G      332.4 G, attention 0.84 G (0.25 % of the rest)
    full (sa_kv_size: null)      24.1 G, attention 0.570 G      438.2 G, attention 106.6 G (32.2 % of the rest)

Video (paper Sec. 2.2, Eq. 7): ``f_i = NetE(B_i, I_{i-1}); h_i, g_i = ConvLSTM(h_{i-1}, f_i); I_i = NetD(g_i)``. Each
step sees 5 frames stacked on the channel axis (early fusion): the 2 previous *deblurred* outputs, the current blurry
frame and the 2 next blurry ones. The paper does not give the ConvLSTM's size; ours (our choice, to land on the
paper's 12.4 MB) has 64 hidden channels and 3x3 gates on the 4n = 128-channel encoder output, and its output
``g_i = W h_i`` (a 1x1 conv to the decoder's 4n channels) is all the decoder reads at the bottleneck, as in Eq. 7:
3,098,783 parameters, 12.40 MB. ``lstm_bypass: true`` (not in the paper) feeds the decoder ``f_i + W h_i`` instead,
with ``W`` starting at zero so that training starts from the image net (the form of checkpoints saved before Eq. 7
became the default: load them with ``lstm_bypass: true``). ``scripts/model_cost.py`` prints these counts.
"""
from collections import deque

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from deblurzoo.ops import ModulatedDeformConv
from .arch_util import (ResidualBlock, check_image_input, conv3x3, crop_to, default_init_weights, pad_to_multiple,
                        zero_module)
from .protocol import ArchProtocol

NUM_MID_BLOCKS = 6  # the mid-level blocks at 1/4 resolution that num_drm counts (3 encoder + 3 decoder)


class DeformableResidualModule(nn.Module):
    """Deformable Residual Module (paper Fig. 2): ``x + conv(relu(deform_conv(x, offsets(x))))``.

    A 3x3 conv predicts the deformable conv's 2 * k * k offsets (plain DCNv1 sampling, no modulation) from the
    module's input; it starts at zero, so the module starts as a plain residual block.

    Args:
        num_feat (int): Channel number.
        kernel_size (int): Kernel size of the deformable conv. Default: 3.
        dcn_backend (str | None): Deformable-conv backend (see ``deblurzoo.ops``). Default: None.
    """

    def __init__(self, num_feat, kernel_size=3, dcn_backend=None):
        super().__init__()
        self.conv_offset = zero_module(nn.Conv2d(num_feat, 2 * kernel_size * kernel_size, 3, padding=1))
        self.dcn = ModulatedDeformConv(num_feat, num_feat, kernel_size, padding=kernel_size // 2, backend=dcn_backend)
        self.act = nn.ReLU(inplace=True)
        self.conv = conv3x3(num_feat, num_feat)

    def forward(self, x):
        return x + self.conv(self.act(self.dcn(x, self.conv_offset(x))))


def _pooling_matrix(size, max_bins, like):
    """(bins, size) matrix averaging ``size`` positions into ``bins = min(size, max_bins)`` bins, bin ``i`` covering
    positions ``floor(i * size / bins)`` to ``ceil((i + 1) * size / bins) - 1`` (``adaptive_avg_pool``'s bins)."""
    bins = torch.clamp(size, max=max_bins) if torch.is_tensor(size) else min(size, max_bins)
    index = torch.arange(bins, device=like.device).unsqueeze(1)  # (bins, 1)
    position = torch.arange(size, device=like.device).unsqueeze(0)  # (1, size)
    start = torch.div(index * size, bins, rounding_mode='floor')
    end = torch.div((index + 1) * size + bins - 1, bins, rounding_mode='floor')
    inside = ((position >= start) & (position < end)).to(like.dtype)
    return inside / inside.sum(1, keepdim=True)


class SelfAttention(nn.Module):
    """Non-local self-attention (Wang et al.'s embedded-Gaussian block), residual, with pooled keys and values.

    ``x + W softmax(theta(x) phi(P x)^T / sqrt(d)) g(P x)`` with 1x1 embeddings to ``num_feat // reduction`` channels
    and ``W`` zero-initialised (the block starts as the identity). Every position queries; keys and values come from
    ``P x``, the map average-pooled to at most ``kv_size`` x ``kv_size`` positions (SAGAN's non-local block pools its
    keys and values; pooling to a fixed grid, as Asymmetric Non-local blocks do, makes the cost linear in the number of
    positions and the number of keys the same at training crops and at test); maps no larger than the grid are not
    pooled. ``kv_size=None`` is full attention over all positions (cost quadratic in the positions). Computed with
    ``scaled_dot_product_attention``.

    Args:
        num_feat (int): Channel number.
        reduction (int): Embedding width is ``num_feat // reduction``. Default: 8.
        kv_size (int | None): Side of the grid keys and values are pooled to; None: no pooling (full attention).
            Default: 16.
    """

    def __init__(self, num_feat, reduction=8, kv_size=16):
        super().__init__()
        if kv_size is not None and (isinstance(kv_size, bool) or not isinstance(kv_size, int) or kv_size < 1):
            raise ValueError(f'SelfAttention: kv_size must be a positive integer or None (full attention), '
                             f'got {kv_size!r}')
        inner = max(num_feat // reduction, 1)
        self.kv_size = kv_size
        self.query = nn.Conv2d(num_feat, inner, 1)
        self.key_value = nn.Conv2d(num_feat, 2 * inner, 1)
        self.proj = zero_module(nn.Conv2d(inner, num_feat, 1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before the split hold one ``qkv`` conv: its first third is the query, the rest keys/values
        for kind in ('weight', 'bias'):
            old = state_dict.pop(f'{prefix}qkv.{kind}', None)
            if old is not None:
                inner = old.shape[0] // 3
                state_dict[f'{prefix}query.{kind}'], state_dict[f'{prefix}key_value.{kind}'] = old[:inner], old[inner:]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def pooled(self, x):
        """``P x``: (b, c, h, w) -> (b, c, min(h, kv_size), min(w, kv_size)) averaged over the bins of
        ``adaptive_avg_pool2d``, or ``x`` for full attention. Written as two matrix products whose sizes follow the
        input's, so that a dynamic-size ONNX export keeps them (the exporter cannot take adaptive pooling)."""
        if self.kv_size is None:
            return x
        h, w = x.shape[-2:]  # 0-dim tensors while tracing for export, ints otherwise
        pool_h, pool_w = _pooling_matrix(h, self.kv_size, x), _pooling_matrix(w, self.kv_size, x)
        return pool_h @ x @ pool_w.transpose(0, 1)  # (kh, h) @ (b, c, h, w) @ (w, kw)

    def forward(self, x):
        b, _, h, w = x.shape
        # (b, positions, inner), contiguous: strided inputs send the CPU kernel to a path 5x slower
        q = self.query(x).flatten(2).transpose(1, 2).contiguous()  # (b, hw, inner)
        k, v = (t.contiguous() for t in self.key_value(self.pooled(x)).flatten(2).transpose(1, 2).chunk(2, dim=2))
        out = F.scaled_dot_product_attention(q, k, v)  # (b, hw, inner)
        return x + self.proj(out.transpose(1, 2).reshape(b, -1, h, w))


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (Shi et al.): all four gates from one conv over ``[input, hidden]``.

    Args:
        num_in_feat (int): Input channels.
        num_feat (int): Hidden (and cell) channels.
        kernel_size (int): Gate conv kernel size. Default: 3.
    """

    def __init__(self, num_in_feat, num_feat, kernel_size=3):
        super().__init__()
        self.num_feat = num_feat
        self.gates = nn.Conv2d(num_in_feat + num_feat, 4 * num_feat, kernel_size, padding=kernel_size // 2)

    def forward(self, x, state=None):
        """``x`` (b, c_in, h, w), ``state`` (h, c) or None (zeros) -> new ``(h, c)``."""
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.num_feat, *x.shape[2:])
            state = (zeros, zeros)
        hidden, cell = state
        i, f, o, g = self.gates(torch.cat([x, hidden], 1)).chunk(4, dim=1)
        cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        return hidden, cell


class _SARNBody(nn.Module):
    """SARN's encoder (:meth:`encode`: NetE, up to and including self-attention) and decoder (:meth:`decode`: NetD),
    on a (b, num_in_ch, h, w) input whose h and w are multiples of 4."""

    def __init__(self, num_in_ch, num_out_ch, num_feat, num_block, num_drm, with_sa, sa_reduction, sa_kv_size,
                 dcn_backend):
        super().__init__()
        if not 0 <= num_drm <= NUM_MID_BLOCKS:
            raise ValueError(f'num_drm must be in [0, {NUM_MID_BLOCKS}] (the mid-level blocks), got {num_drm}')
        c1, c2, c3 = num_feat, 2 * num_feat, 4 * num_feat

        def blocks(c, n):
            return [ResidualBlock(c, act='relu') for _ in range(n)]

        def mid(index):  # mid-level block `index` of 0..5: the first num_drm are deformable
            if index < num_drm:
                return DeformableResidualModule(c3, dcn_backend=dcn_backend)
            return ResidualBlock(c3, act='relu')

        relu = nn.ReLU(inplace=True)
        self.enc1 = nn.Sequential(conv3x3(num_in_ch, c1), relu, *blocks(c1, num_block))
        self.enc2 = nn.Sequential(conv3x3(c1, c2, stride=2), relu, *blocks(c2, num_block))
        self.enc3 = nn.Sequential(conv3x3(c2, c3, stride=2), relu, *[mid(i) for i in range(3)])
        self.attention = SelfAttention(c3, sa_reduction, sa_kv_size) if with_sa else nn.Identity()
        self.dec3 = nn.Sequential(*[mid(i) for i in range(3, 6)], nn.ConvTranspose2d(c3, c2, 3, 2, 1, 1), relu)
        self.dec2 = nn.Sequential(*blocks(c2, num_block), nn.ConvTranspose2d(c2, c1, 3, 2, 1, 1), relu)
        self.dec1 = nn.Sequential(*blocks(c1, num_block), conv3x3(c1, num_out_ch))
        default_init_weights(self, 'xavier')
        for m in self.modules():  # offsets start at the regular grid, attention at the identity
            if isinstance(m, DeformableResidualModule):
                zero_module(m.conv_offset)
            elif isinstance(m, SelfAttention):
                zero_module(m.proj)
        zero_module(self.dec1[-1])  # the residual starts at zero: an untrained net returns its input

    def encode(self, x):
        """(b, num_in_ch, h, w) -> bottleneck features (b, 4n, h/4, w/4) and the skips [(b, n, h, w), (b, 2n, ...)]."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        return self.attention(self.enc3(e2)), (e1, e2)

    def decode(self, feat, skips):
        """Bottleneck features and skips -> residual (b, num_out_ch, h, w)."""
        e1, e2 = skips
        return self.dec1(self.dec2(self.dec3(feat) + e2) + e1)


def _check_residual_channels(name, num_in_ch, num_out_ch):
    if num_in_ch != num_out_ch:
        raise ValueError(f'{name}: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch}) (global residual)')


@ARCH_REGISTRY.register()
class SARN(nn.Module):
    """Spatially-Adaptive Residual Network for single-image deblurring (paper Fig. 1).

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels (equal to num_in_ch: the output is input + residual). Default: 3.
        num_feat (int): Channels at full resolution (n; 2n and 4n below). Default: 32.
        num_block (int): Residual blocks per level (SRN's 3). Default: 3.
        num_drm (int): How many of the 6 mid-level blocks are Deformable Residual Modules (Table 3: 0, 3 or 6).
            Default: 6.
        with_sa (bool): Self-attention on the encoder's output (Table 3). Default: True.
        sa_reduction (int): Self-attention embedding width is 4n // sa_reduction. Default: 8.
        sa_kv_size (int | None): Self-attention keys and values are pooled to at most sa_kv_size x sa_kv_size
            positions (cost linear in pixels, see the module docstring); None: full attention over all h/4 x w/4
            positions (quadratic). Default: 16.
        dcn_backend (str | None): Deformable-conv backend ('torchvision', 'pytorch', 'mmcv'); None: deblurzoo's
            default. Default: None.
    """

    protocol = ArchProtocol('image')

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=32,
                 num_block=3,
                 num_drm=6,
                 with_sa=True,
                 sa_reduction=8,
                 sa_kv_size=16,
                 dcn_backend=None):
        super().__init__()
        _check_residual_channels('SARN', num_in_ch, num_out_ch)
        self.num_in_ch = num_in_ch
        self.body = _SARNBody(num_in_ch, num_out_ch, num_feat, num_block, num_drm, with_sa, sa_reduction, sa_kv_size,
                              dcn_backend)

    def forward(self, x, return_aux=False):
        """(b, c, h, w) blurry -> (b, c, h, w) restored; any h and w (padded inside to a multiple of 4)."""
        check_image_input(x, self.num_in_ch, 'SARN')
        x_pad, size = pad_to_multiple(x, 4)
        out = crop_to(x_pad + self.body.decode(*self.body.encode(x_pad)), size)
        return (out, {}) if return_aux else out  # no auxiliary outputs


def check_clip_input(x, num_frame, name, num_ch=3):
    """Raise a clear error unless ``x`` is a (b, t, num_ch, h, w) clip (with t == ``num_frame`` when given)."""
    if not torch.is_tensor(x) or x.dim() != 5 or x.shape[2] != num_ch or (num_frame and x.shape[1] != num_frame):
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        frames = num_frame or 'frames'
        raise ValueError(f'{name} expects a (batch, {frames}, {num_ch}, height, width) tensor, got {shape}')


@ARCH_REGISTRY.register()
class SARNMulti(nn.Module):
    """SARN on ``num_frame`` stacked blurry frames (the paper's "Ours-Multi", DVD-Noalign's input): restores the
    centre frame.

    Input (b, num_frame, num_in_ch, h, w), output (b, num_out_ch, h, w) = centre frame + residual. Whole sequences are
    restored one window per frame by the video model (``VideoDeblurModel``, windows from BasicSR's
    ``generate_frame_indices``).

    Args:
        num_in_ch (int): Channels of each frame. Default: 3.
        num_out_ch (int): Output channels (equal to num_in_ch: centre frame + residual). Default: 3.
        num_frame (int): Stacked frames (odd). Default: 5.
        Others: as :class:`SARN`.
    """

    protocol = ArchProtocol('window')

    def __init__(self, num_in_ch=3, num_out_ch=3, num_frame=5, num_feat=32, num_block=3, num_drm=6, with_sa=True,
                 sa_reduction=8, sa_kv_size=16, dcn_backend=None):
        super().__init__()
        _check_residual_channels('SARNMulti', num_in_ch, num_out_ch)
        if num_frame < 1 or num_frame % 2 == 0:
            raise ValueError(f'SARNMulti: num_frame must be odd (a centre frame), got {num_frame}')
        self.num_in_ch = num_in_ch
        self.num_frame = num_frame
        self.body = _SARNBody(num_in_ch * num_frame, num_out_ch, num_feat, num_block, num_drm, with_sa, sa_reduction,
                              sa_kv_size, dcn_backend)

    def forward(self, x, return_aux=False):
        """(b, num_frame, c, h, w) -> (b, c, h, w), the centre frame restored."""
        check_clip_input(x, self.num_frame, 'SARNMulti', self.num_in_ch)
        x_pad, size = pad_to_multiple(x, 4)
        centre = x_pad[:, self.num_frame // 2]
        out = crop_to(centre + self.body.decode(*self.body.encode(x_pad.flatten(1, 2))), size)
        return (out, {}) if return_aux else out  # no auxiliary outputs


@ARCH_REGISTRY.register()
class SARNRecurrent(nn.Module):
    """Recurrent SARN for video (paper Sec. 2.2): frame-level recurrence (its own previous outputs are inputs) and
    feature-level recurrence (a ConvLSTM between encoder and decoder).

    ``forward`` restores a whole clip (b, t, c, h, w) -> (b, t, c, h, w) in one call (training: gradients flow through
    time). :meth:`stream` restores a video of any length frame by frame, holding only ``num_next + 1`` input frames,
    ``num_prev`` outputs and the ConvLSTM state (:class:`SARNState`); ``forward`` is :meth:`stream` over the clip, so
    both give the same frames. At the ends the missing neighbours are the nearest frame: before the first frame the
    previous outputs are the first blurry frame, after the last the next frames are the last one.

    Args:
        num_in_ch (int): Channels of each frame. Default: 3.
        num_out_ch (int): Output channels (equal to num_in_ch: current frame + residual). Default: 3.
        num_prev (int): Previous deblurred outputs per step. Default: 2.
        num_next (int): Next blurry frames per step. Default: 2.
        lstm_feat (int): ConvLSTM hidden channels. Default: 64.
        lstm_kernel (int): ConvLSTM gate kernel size. Default: 3.
        lstm_bypass (bool): The decoder reads ``f_i + W h_i`` (the encoder output plus the zero-initialised
            projected ConvLSTM state, which starts training from the image net) instead of the paper's Eq. 7
            ``g_i = W h_i`` (the ConvLSTM's output alone). Not in the paper. Default: False.
        Others: as :class:`SARN`.
    """

    protocol = ArchProtocol('sequence', stream=True)

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=32,
                 num_block=3,
                 num_drm=6,
                 with_sa=True,
                 sa_reduction=8,
                 sa_kv_size=16,
                 num_prev=2,
                 num_next=2,
                 lstm_feat=64,
                 lstm_kernel=3,
                 lstm_bypass=False,
                 dcn_backend=None):
        super().__init__()
        _check_residual_channels('SARNRecurrent', num_in_ch, num_out_ch)
        self.num_in_ch = num_in_ch
        self.num_prev, self.num_next = num_prev, num_next
        self.lstm_bypass = lstm_bypass
        self.body = _SARNBody(num_in_ch * (num_prev + 1 + num_next), num_out_ch, num_feat, num_block, num_drm, with_sa,
                              sa_reduction, sa_kv_size, dcn_backend)
        self.lstm = ConvLSTMCell(4 * num_feat, lstm_feat, lstm_kernel)
        self.lstm_out = nn.Conv2d(lstm_feat, 4 * num_feat, 1)  # W: the ConvLSTM's hidden state to the decoder's width
        default_init_weights(self.lstm, 'xavier')
        default_init_weights(self.lstm_out, 'xavier')
        if lstm_bypass:
            zero_module(self.lstm_out)  # g_i = f_i + W h_i starts as f_i

    def step(self, frames, state=None):
        """One time step.

        Args:
            frames (Tensor): (b, num_next + 1, c, h, w): the current blurry frame and the next ones.
            state (SARNState | None): What the previous step returned; None at the first frame.

        Returns:
            tuple[Tensor, SARNState]: The restored current frame (b, c, h, w) and the state for the next step.
        """
        check_clip_input(frames, self.num_next + 1, 'SARNRecurrent.step', self.num_in_ch)
        current = frames[:, 0]
        prev = [current] * self.num_prev if state is None else list(state.outputs)
        x_pad, size = pad_to_multiple(torch.cat(prev + [frames.flatten(1, 2)], 1), 4)
        feat, skips = self.body.encode(x_pad)  # f_i = NetE(B_i, I_{i-1})
        lstm_state = None if state is None else (state.hidden, state.cell)
        hidden, cell = self.lstm(feat, lstm_state)  # h_i
        decoder_in = self.lstm_out(hidden)  # g_i (Eq. 7)
        if self.lstm_bypass:
            decoder_in = feat + decoder_in
        out = current + crop_to(self.body.decode(decoder_in, skips), size)  # I_i = NetD(g_i)
        outputs = (prev + [out])[-self.num_prev:] if self.num_prev else []
        return out, SARNState(hidden, cell, tuple(outputs))

    def stream(self, frames):
        """Restore a video frame by frame with constant memory.

        Args:
            frames (Iterable[Tensor]): Blurry frames (b, 3, h, w), e.g. read lazily from a file.

        Yields:
            Tensor: The restored frames (b, 3, h, w), in order; each as soon as its ``num_next`` next frames have been
            read (or the input has ended).
        """
        window, state = deque(), None
        for frame in frames:
            window.append(frame)
            if len(window) == self.num_next + 1:
                out, state = self.step(torch.stack(tuple(window), 1), state)
                window.popleft()
                yield out
        while window:  # the last frames: repeat the last one as their missing next frames
            padded = list(window) + [window[-1]] * (self.num_next + 1 - len(window))
            out, state = self.step(torch.stack(padded, 1), state)
            window.popleft()
            yield out

    def forward(self, x, return_aux=False):
        """(b, t, c, h, w) blurry clip -> (b, t, c, h, w) restored clip (any t >= 1, any h and w)."""
        check_clip_input(x, None, 'SARNRecurrent', self.num_in_ch)
        out = torch.stack(list(self.stream(x.unbind(1))), 1)
        return (out, {}) if return_aux else out  # no auxiliary outputs


class SARNState:
    """What :class:`SARNRecurrent` carries from one frame to the next: the ConvLSTM's hidden and cell states
    (b, lstm_feat, h/4, w/4) and its last ``num_prev`` outputs (b, 3, h, w), oldest first. Its size does not depend on
    how many frames were restored."""

    __slots__ = ('hidden', 'cell', 'outputs')

    def __init__(self, hidden, cell, outputs):
        self.hidden, self.cell, self.outputs = hidden, cell, outputs

    def tensors(self):
        """Every tensor held (for memory accounting)."""
        return [self.hidden, self.cell, *self.outputs]
