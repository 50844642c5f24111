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

Video (paper Sec. 2.2, Eq. 7): ``f_i = NetE(B_i, I_{i-1}); h_i, g_i = ConvLSTM(h_{i-1}, f_i); I_i = NetD(g_i)``. Each
step sees 5 frames stacked on the channel axis (early fusion): the 2 previous *deblurred* outputs, the current blurry
frame and the 2 next blurry ones. The paper does not give the ConvLSTM's size; ours (our choice, to land on the
paper's 12.4 MB) has 64 hidden channels and 3x3 gates on the 4n = 128-channel encoder output, and its hidden state
enters the decoder through a zero-initialised 1x1 conv added to the encoder output (``g_i = f_i + W h_i``): 3,098,783
parameters, 12.40 MB. ``scripts/model_cost.py`` prints these counts.
"""
from collections import deque

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from deblurzoo.ops import ModulatedDeformConv
from .arch_util import (ResidualBlock, check_image_input, conv3x3, crop_to, default_init_weights, pad_to_multiple,
                        zero_module)

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


class SelfAttention(nn.Module):
    """Non-local self-attention over all positions (Wang et al.'s embedded-Gaussian block), residual.

    ``x + W softmax(theta(x) phi(x)^T / sqrt(d)) g(x)`` with 1x1 embeddings to ``num_feat // reduction`` channels and
    ``W`` zero-initialised (the block starts as the identity). Computed with ``scaled_dot_product_attention``, whose
    fused kernels never hold the (hw x hw) attention matrix, so large images fit.

    Args:
        num_feat (int): Channel number.
        reduction (int): Embedding width is ``num_feat // reduction``. Default: 8.
    """

    def __init__(self, num_feat, reduction=8):
        super().__init__()
        inner = max(num_feat // reduction, 1)
        self.qkv = nn.Conv2d(num_feat, 3 * inner, 1)
        self.proj = zero_module(nn.Conv2d(inner, num_feat, 1))

    def forward(self, x):
        b, _, h, w = x.shape
        # (b, hw, inner) each, contiguous: strided inputs send the CPU kernel to a path 5x slower
        q, k, v = (t.contiguous() for t in self.qkv(x).flatten(2).transpose(1, 2).chunk(3, dim=2))
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

    def __init__(self, num_in_ch, num_out_ch, num_feat, num_blocks, num_drm, with_sa, sa_reduction, dcn_backend):
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
        self.enc1 = nn.Sequential(conv3x3(num_in_ch, c1), relu, *blocks(c1, num_blocks))
        self.enc2 = nn.Sequential(conv3x3(c1, c2, stride=2), relu, *blocks(c2, num_blocks))
        self.enc3 = nn.Sequential(conv3x3(c2, c3, stride=2), relu, *[mid(i) for i in range(3)])
        self.attention = SelfAttention(c3, sa_reduction) if with_sa else nn.Identity()
        self.dec3 = nn.Sequential(*[mid(i) for i in range(3, 6)], nn.ConvTranspose2d(c3, c2, 3, 2, 1, 1), relu)
        self.dec2 = nn.Sequential(*blocks(c2, num_blocks), nn.ConvTranspose2d(c2, c1, 3, 2, 1, 1), relu)
        self.dec1 = nn.Sequential(*blocks(c1, num_blocks), conv3x3(c1, num_out_ch))
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


@ARCH_REGISTRY.register()
class SARN(nn.Module):
    """Spatially-Adaptive Residual Network for single-image deblurring (paper Fig. 1).

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels (equal to num_in_ch: the output is input + residual). Default: 3.
        num_feat (int): Channels at full resolution (n; 2n and 4n below). Default: 32.
        num_blocks (int): Residual blocks per level (SRN's 3). Default: 3.
        num_drm (int): How many of the 6 mid-level blocks are Deformable Residual Modules (Table 3: 0, 3 or 6).
            Default: 6.
        with_sa (bool): Self-attention on the encoder's output (Table 3). Default: True.
        sa_reduction (int): Self-attention embedding width is 4n // sa_reduction. Default: 8.
        dcn_backend (str | None): Deformable-conv backend ('torchvision', 'pytorch', 'mmcv'); None: deblurzoo's
            default. Default: None.
    """

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=32,
                 num_blocks=3,
                 num_drm=6,
                 with_sa=True,
                 sa_reduction=8,
                 dcn_backend=None):
        super().__init__()
        if num_in_ch != num_out_ch:
            raise ValueError(f'SARN: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch}) (global residual)')
        self.num_in_ch = num_in_ch
        self.body = _SARNBody(num_in_ch, num_out_ch, num_feat, num_blocks, num_drm, with_sa, sa_reduction, dcn_backend)

    def forward(self, x, return_aux=False):
        """(b, c, h, w) blurry -> (b, c, h, w) restored; any h and w (padded inside to a multiple of 4)."""
        check_image_input(x, self.num_in_ch, 'SARN')
        x_pad, size = pad_to_multiple(x, 4)
        out = crop_to(x_pad + self.body.decode(*self.body.encode(x_pad)), size)
        return (out, {}) if return_aux else out  # no auxiliary outputs


def check_clip_input(x, num_frame, name):
    """Raise a clear error unless ``x`` is a (b, t, 3, h, w) clip (with t == ``num_frame`` when given)."""
    if not torch.is_tensor(x) or x.dim() != 5 or x.shape[2] != 3 or (num_frame and x.shape[1] != num_frame):
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        frames = num_frame or 'frames'
        raise ValueError(f'{name} expects a (batch, {frames}, 3, height, width) tensor, got {shape}')


@ARCH_REGISTRY.register()
class SARNMulti(nn.Module):
    """SARN on ``num_frame`` stacked blurry frames (the paper's "Ours-Multi", DVD-Noalign's input): restores the
    centre frame.

    Input (b, num_frame, 3, h, w), output (b, 3, h, w) = centre frame + residual. Whole sequences are restored one
    window per frame by the video model (``VideoDeblurModel``, windows from BasicSR's ``generate_frame_indices``).

    Args:
        num_frame (int): Stacked frames (odd). Default: 5.
        Others: as :class:`SARN`.
    """

    def __init__(self, num_frame=5, num_feat=32, num_blocks=3, num_drm=6, with_sa=True, sa_reduction=8,
                 dcn_backend=None):
        super().__init__()
        if num_frame < 1 or num_frame % 2 == 0:
            raise ValueError(f'SARNMulti: num_frame must be odd (a centre frame), got {num_frame}')
        self.num_frame = num_frame
        self.body = _SARNBody(3 * num_frame, 3, num_feat, num_blocks, num_drm, with_sa, sa_reduction, dcn_backend)

    def forward(self, x, return_aux=False):
        """(b, num_frame, 3, h, w) -> (b, 3, h, w), the centre frame restored."""
        check_clip_input(x, self.num_frame, 'SARNMulti')
        x_pad, size = pad_to_multiple(x, 4)
        centre = x_pad[:, self.num_frame // 2]
        out = crop_to(centre + self.body.decode(*self.body.encode(x_pad.flatten(1, 2))), size)
        return (out, {}) if return_aux else out  # no auxiliary outputs


@ARCH_REGISTRY.register()
class SARNRecurrent(nn.Module):
    """Recurrent SARN for video (paper Sec. 2.2): frame-level recurrence (its own previous outputs are inputs) and
    feature-level recurrence (a ConvLSTM between encoder and decoder).

    ``forward`` restores a whole clip (b, t, 3, h, w) -> (b, t, 3, h, w) in one call (training: gradients flow through
    time). :meth:`stream` restores a video of any length frame by frame, holding only ``num_next + 1`` input frames,
    ``num_prev`` outputs and the ConvLSTM state (:class:`SARNState`); ``forward`` is :meth:`stream` over the clip, so
    both give the same frames. At the ends the missing neighbours are the nearest frame: before the first frame the
    previous outputs are the first blurry frame, after the last the next frames are the last one.

    Args:
        num_prev (int): Previous deblurred outputs per step. Default: 2.
        num_next (int): Next blurry frames per step. Default: 2.
        lstm_feat (int): ConvLSTM hidden channels. Default: 64.
        lstm_kernel (int): ConvLSTM gate kernel size. Default: 3.
        Others: as :class:`SARN`.
    """

    def __init__(self,
                 num_feat=32,
                 num_blocks=3,
                 num_drm=6,
                 with_sa=True,
                 sa_reduction=8,
                 num_prev=2,
                 num_next=2,
                 lstm_feat=64,
                 lstm_kernel=3,
                 dcn_backend=None):
        super().__init__()
        self.num_prev, self.num_next = num_prev, num_next
        num_in_ch = 3 * (num_prev + 1 + num_next)
        self.body = _SARNBody(num_in_ch, 3, num_feat, num_blocks, num_drm, with_sa, sa_reduction, dcn_backend)
        self.lstm = ConvLSTMCell(4 * num_feat, lstm_feat, lstm_kernel)
        self.lstm_out = zero_module(nn.Conv2d(lstm_feat, 4 * num_feat, 1))  # g_i = f_i + W h_i; starts as f_i
        default_init_weights(self.lstm, 'xavier')

    def step(self, frames, state=None):
        """One time step.

        Args:
            frames (Tensor): (b, num_next + 1, 3, h, w): the current blurry frame and the next ones.
            state (SARNState | None): What the previous step returned; None at the first frame.

        Returns:
            tuple[Tensor, SARNState]: The restored current frame (b, 3, h, w) and the state for the next step.
        """
        check_clip_input(frames, self.num_next + 1, 'SARNRecurrent.step')
        current = frames[:, 0]
        prev = [current] * self.num_prev if state is None else list(state.outputs)
        x_pad, size = pad_to_multiple(torch.cat(prev + [frames.flatten(1, 2)], 1), 4)
        feat, skips = self.body.encode(x_pad)
        lstm_state = None if state is None else (state.hidden, state.cell)
        hidden, cell = self.lstm(feat, lstm_state)
        out = current + crop_to(self.body.decode(feat + self.lstm_out(hidden), skips), size)
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
        """(b, t, 3, h, w) blurry clip -> (b, t, 3, h, w) restored clip (any t >= 1, any h and w)."""
        check_clip_input(x, None, 'SARNRecurrent')
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
