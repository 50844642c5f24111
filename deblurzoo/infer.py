"""Deblur images, folders of images and video files with a trained deblurzoo (or any BasicSR) network.

    deblurzoo-infer --model options/demo/test_svdn_demo.yml --input blurry.png --output sharp.png
    deblurzoo-infer --model SVDN --weights net_g_latest.pth --input photos/ --output sharp/ --self-ensemble 8
    python -m deblurzoo.infer --model options/test_sarnrecurrent_dvd.yml --input clip.mp4 --output clip_sharp.mp4

``--model`` is a registered arch name (built with its default, i.e. paper, constructor arguments) or an option file
(``network_g``, and for two-stage models ``network_stage1``; the checkpoints in ``path`` and ``val.self_ensemble``
are the defaults of ``--weights`` and ``--self-ensemble``). Checkpoints are BasicSR's (``params_ema`` is preferred to
``params`` unless ``--param-key`` says otherwise; a bare state dict works too) and load with ``weights_only=True``, so
a checkpoint that holds pickled code is refused.

What comes out has the input's kind, size, bit depth and channel layout: an image gives an image (8- or 16-bit,
grayscale, RGB or RGBA; the network sees RGB, grayscale is restored as RGB and converted back, alpha is kept as it
is), a folder gives a folder with the same relative file names, a video file (mp4, avi, mov, mkv, m4v) gives a video
with the same frame count, size and frame rate. Video nets (window nets such as ``SARNMulti``/``MLFANet``, recurrent
ones such as ``SARNRecurrent``) take a video file, or a folder as the frames of one sequence in name order; recurrent
nets stream the frames (``stream``), window nets hold only their window, so memory does not grow with the length.

Large inputs are restored in overlapping tiles (``--tile``; ``auto`` measures the net's memory at two small sizes and
tiles only when the input would not fit ``--max-memory``), blended across the overlaps (``deblurzoo/models/
test_time.py``). ``--self-ensemble`` averages flipped/rotated copies; ``--fp16`` runs CUDA in half precision;
``--side-by-side`` writes input and result next to each other. Existing outputs are never overwritten without
``--overwrite``.

Bad input stops with one line naming the file, key or value (exit status 2), before anything is written where it can
be known early: unreadable, empty or truncated images (a truncated JPEG, which OpenCV would silently fill with grey,
included), checkpoints that are not checkpoints, are truncated, carry pickled code, hold NaN weights or do not fit the
arch (its keys named), option files with unknown or missing constructor arguments (the accepted ones listed, the
closest suggested), and output folders that cannot be written. A result holding NaN or inf is refused rather than
written; :class:`Restorer` also refuses inputs that hold them (a ``ValueError``).
"""
import argparse
import collections
import itertools
import os
import os.path as osp
import sys

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

import deblurzoo  # noqa: F401  (registers the archs; patches BasicSR first)
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from deblurzoo.checkpoint import CheckpointError, check_state_dict, load_state_dict
from deblurzoo.option_keys import check_constructor_keys, did_you_mean
from deblurzoo.data.data_util import decode_stored
from deblurzoo.models.deblur_model import split_output
from deblurzoo.models.test_time import (ensemble_size, ensemble_stream, measure_peak_memory, plan_tile,
                                        self_ensemble, tiled, tiled_stream)

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.m4v')
FOURCC = {'.avi': 'MJPG'}  # others: mp4v


InferenceError = CheckpointError  # bad input of any kind: the CLI prints it without a traceback


# ---------------------------------------------------------------------------------------------------------------------
# models and checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def load_weights(net, path, param_key=None, arch=None):
    """Load a checkpoint into ``net`` strictly; a mismatch names the missing, unexpected and mis-shaped keys."""
    state, key = load_state_dict(path, param_key)
    check_state_dict(net, state, path, key, arch)
    net.load_state_dict(state, strict=True)
    return key


class LoadedModel:
    """A network ready for inference (eval mode, on its device), with what the CLI needs to know about it.

    Attributes:
        net (nn.Module): The network (``network_g``).
        stage1 (nn.Module | None): A two-stage model's frozen first stage (``network_stage1``), run on every frame.
        arch (str): ``net``'s registered type.
        network_opt (dict): Its constructor options, ``type`` included.
        kind (str): 'image', 'window' (a ``num_frame`` > 1 attribute: restores the centre of a clip) or
            'recurrent' (a ``stream`` method).
        weights (str | None): The checkpoint loaded into ``net``.
        self_ensemble (int): The option file's ``val.self_ensemble`` as a transform count (1: off).
    """

    def __init__(self, net, network_opt, weights=None, stage1=None, self_ensemble=1):
        self.net, self.stage1, self.network_opt = net, stage1, dict(network_opt)
        self.arch = network_opt['type']
        self.weights, self.self_ensemble = weights, self_ensemble
        if callable(getattr(net, 'stream', None)):
            self.kind = 'recurrent'
        elif (getattr(net, 'num_frame', None) or 1) > 1:
            self.kind = 'window'
        else:
            self.kind = 'image'

    @property
    def device(self):
        return next(itertools.chain(self.net.parameters(), self.net.buffers(), [torch.empty(0)])).device


def _arch_class(name):
    """The class registered as ``name`` (or BasicSR's ``name_basicsr``, as ``ARCH_REGISTRY.get`` finds it), or None."""
    registry = ARCH_REGISTRY._obj_map
    return registry.get(name) or registry.get(f'{name}_basicsr')


def _build(network_opt, key):
    if not isinstance(network_opt, dict) or 'type' not in network_opt:
        raise InferenceError(f'{key}: a mapping with a type: (an arch name), got {network_opt!r}')
    arch = network_opt['type']
    cls = _arch_class(arch) if isinstance(arch, str) else None
    if cls is None:
        raise InferenceError(f'{key}.type: no arch {arch!r} is registered' + did_you_mean(arch, ARCH_REGISTRY._obj_map)
                             + f'; registered: {", ".join(sorted(ARCH_REGISTRY._obj_map))}')
    kwargs = {k: v for k, v in network_opt.items() if k != 'type'}
    try:
        check_constructor_keys(cls, kwargs, f'{key}: {arch}')
    except TypeError as err:
        raise InferenceError(str(err)) from None
    try:
        return build_network(dict(network_opt))
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:  # a value the constructor cannot take
        raise InferenceError(f'{key}: {arch}({", ".join(f"{k}={v!r}" for k, v in kwargs.items())}) failed: '
                             f'{type(err).__name__}: {err}') from None


def resolve_device(device='auto'):
    """'auto' -> the first GPU if there is one, else the CPU."""
    if device in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise InferenceError(f'--device: {err}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InferenceError(f'--device {device}: CUDA is not available here (use cpu)')
    return device


def load_model(model, weights=None, param_key=None, device='cpu'):
    """Build a network from an arch name or an option file and load its checkpoint.

    Args:
        model (str): A registered arch name (default constructor arguments) or a YAML option file.
        weights (str | None): Checkpoint; None: the option file's ``path.pretrain_network_g``. An arch name without
            weights gives the untrained net (for tests and cost measurements).
        param_key (str | None): Checkpoint key; None: the option file's ``path.param_key_g``, else automatic
            (:func:`load_state_dict`).
        device (str | torch.device): Where to put the net ('auto': a GPU if there is one). Default: 'cpu'.

    Returns:
        LoadedModel
    """
    device = resolve_device(device)
    opt = {}
    if model.endswith(('.yml', '.yaml')) or osp.isfile(model):
        if not osp.isfile(model):
            raise InferenceError(f'option file not found: {model}')
        with open(model, encoding='utf-8') as f:
            try:
                opt = yaml.safe_load(f) or {}
            except yaml.YAMLError as err:
                mark = getattr(err, 'problem_mark', None)
                where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
                raise InferenceError(f'cannot parse option file {model}{where}: '
                                     f'{getattr(err, "problem", None) or err}') from None
        if not isinstance(opt, dict):
            raise InferenceError(f'option file {model} holds a {type(opt).__name__}, not a mapping of options')
        if 'network_g' not in opt:
            raise InferenceError(f'option file {model} has no network_g')
        network_opt = opt['network_g']
    elif model in ARCH_REGISTRY._obj_map:
        network_opt = {'type': model}
    else:
        raise InferenceError(f'--model {model!r} is neither an option file nor a registered arch'
                             + did_you_mean(model, ARCH_REGISTRY._obj_map)
                             + f'; registered: {", ".join(sorted(ARCH_REGISTRY._obj_map))}')
    path_opt = opt.get('path') or {}
    net = _build(network_opt, 'network_g')
    weights = weights or path_opt.get('pretrain_network_g')
    if weights:
        load_weights(net, weights, param_key or path_opt.get('param_key_g'), network_opt['type'])
    elif opt:
        raise InferenceError(f'{model}: path.pretrain_network_g is empty; pass --weights')
    stage1 = None
    if opt.get('network_stage1'):
        stage1 = _build(opt['network_stage1'], 'network_stage1')
        stage1_weights = path_opt.get('pretrain_network_stage1')
        if not stage1_weights:
            raise InferenceError(f'{model}: network_stage1 needs path.pretrain_network_stage1')
        load_weights(stage1, stage1_weights, path_opt.get('param_key_stage1'), opt['network_stage1']['type'])
        stage1 = stage1.to(device).eval().requires_grad_(False)
    try:
        num = ensemble_size((opt.get('val') or {}).get('self_ensemble'))
    except ValueError as err:
        raise InferenceError(f'{model}: {err}') from None
    return LoadedModel(net.to(device).eval().requires_grad_(False), network_opt, weights, stage1, num)


# ---------------------------------------------------------------------------------------------------------------------
# restoring tensors
# ---------------------------------------------------------------------------------------------------------------------


def _nonfinite(t):
    """'3 NaN and 1 inf values' (how many of ``t``'s values are not finite)."""
    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    return ' and '.join(f'{n} {what}' for n, what in ((nan, 'NaN'), (inf, 'inf')) if n) + ' values'


def sliding_windows(frames, num_frame):
    """Clips of ``num_frame`` frames centred on each frame of a stream, the ends padded by repeating the first/last
    frame (BasicSR's 'replicate' window), holding only ``num_frame`` frames.

    Args:
        frames (Iterable[Tensor]): (b, c, h, w) frames.

    Yields:
        Tensor: (b, num_frame, c, h, w), one per frame, in order.
    """
    half = num_frame // 2
    window = collections.deque(maxlen=num_frame)
    count = 0
    for frame in frames:
        if not window:
            window.extend([frame] * (half + 1))  # frames before the first: the first
        else:
            window.append(frame)
        count += 1
        if count > half:
            yield torch.stack(tuple(window), 1)
    for _ in range(min(count, half)):  # the last frames: repeat the last one
        window.append(window[-1])
        yield torch.stack(tuple(window), 1)


class Restorer:
    """Runs a :class:`LoadedModel` on images and frame streams, with self-ensemble, tiling and fp16.

    Args:
        model (LoadedModel): The model.
        self_ensemble (int | None): 1 (off), 4, 6 or 8; None: the model's (its option file's) setting.
        tile (int | str | None): Tile side in pixels; 0/None: never tile; 'auto': tile only when the input would
            not fit ``max_memory`` (measured, see :meth:`plan`). Default: None.
        tile_overlap (int): Overlap of neighbouring tiles. Default: 64.
        max_memory (int | None): Bytes the net may use with ``tile='auto'``; None: 80% of the free GPU memory, or
            half of the available RAM on CPU.
        fp16 (bool): Run in float16 (CUDA only). Default: False.
    """

    def __init__(self, model, self_ensemble=None, tile=None, tile_overlap=64, max_memory=None, fp16=False):
        self.model = model
        self.num = ensemble_size(model.self_ensemble if self_ensemble is None else self_ensemble, '--self-ensemble')
        self.tile, self.tile_overlap, self.max_memory = tile or None, tile_overlap, max_memory
        if fp16 and model.device.type != 'cuda':
            raise InferenceError('--fp16 runs on CUDA only; this model is on the CPU')
        self.fp16 = fp16
        self._memory_probe = None

    # one pass of a net, in float16 when asked; outputs back in float32
    def _call(self, net, x):
        with torch.autocast('cuda', dtype=torch.float16, enabled=self.fp16):
            return split_output(net(x))[0].float()

    def _stream(self, frames):
        with torch.autocast('cuda', dtype=torch.float16, enabled=self.fp16):
            for out in self.model.net.stream(frames):
                yield out.float()

    def _probe(self):
        """Peak memory of one pass at two small square sizes (with the clip length the net takes)."""
        if self._memory_probe is None:
            probes = {}
            for side in (64, 128):
                x = torch.rand(1, 3, side, side, device=self.model.device)
                with torch.inference_mode():
                    probes[side] = measure_peak_memory(self._restore_one, x)[0]
            self._memory_probe = probes
        return self._memory_probe

    def budget(self):
        if self.max_memory is not None:
            return self.max_memory
        device = self.model.device
        if device.type == 'cuda':
            return int(0.8 * torch.cuda.mem_get_info(device)[0])
        try:
            with open('/proc/meminfo') as f:
                info = dict(line.split(':', 1) for line in f)
            return int(info['MemAvailable'].split()[0]) * 1024 // 2
        except (OSError, KeyError, ValueError):
            return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') // 2

    def plan(self, h, w):
        """The tile side for an (h, w) input, or None to restore it whole."""
        if self.tile != 'auto':
            return self.tile
        return plan_tile(self._probe(), self.budget(), h, w, smallest=max(64, self.tile_overlap + 32))

    def _restore_one(self, x):
        """One untiled pass for an image (1, 3, h, w): stage 1 if any, then the net (a clip of copies for window
        nets, one step for recurrent nets)."""
        return next(self._video(iter((x, )), tile=None))

    def _image_fn(self, net, tile):
        fn = (lambda x: self._call(net, x))
        return fn if tile is None else (lambda x: tiled(lambda t: self._call(net, t), x, tile, self.tile_overlap))

    @staticmethod
    def _check_input(x, name):
        if not torch.isfinite(x).all():
            raise InferenceError(f'{name} holds {_nonfinite(x)}; inputs must be finite (pixels in [0, 1])')
        return x

    def _check_output(self, y, name):
        """Refuse a result with NaN/inf (a broken checkpoint, or float16 overflow) rather than write a garbage image."""
        if not torch.isfinite(y).all():
            weights = f' with the weights in {self.model.weights}' if self.model.weights else ' (no weights loaded)'
            hint = '; float16 can overflow: try without --fp16' if self.fp16 else ''
            raise InferenceError(f'{self.model.arch}{weights} gave {_nonfinite(y)} for {name}; refusing to return a '
                                 f'broken result (the checkpoint is damaged or does not suit this input){hint}')
        return y

    def image(self, x, name='input tensor'):
        """Restore one image (1, 3, h, w) in [0, 1] (a video net sees it as a one-frame video).

        Raises:
            InferenceError (a ValueError): ``x`` holds NaN or inf, or the net gives NaN or inf; ``name`` (the file)
                is named in the message.
        """
        if self.model.kind != 'image' or self.model.stage1 is not None:
            return next(self.video(iter((x, )), name=lambda i: name))
        self._check_input(x, name)
        fn = self._image_fn(self.model.net, self.plan(*x.shape[-2:]))
        with torch.inference_mode():
            return self._check_output(self_ensemble(fn, x, self.num), name)

    def video(self, frames, tile='plan', name='input frame'):
        """Restore a stream of frames (1, 3, h, w) in [0, 1]; yields one restored frame per input frame, in order.

        ``name``: what errors call frame i: ``f'{name} {i}'``, or ``name(i)`` when it is callable. A frame holding
        NaN or inf, or a result holding them, raises :class:`InferenceError` (a ValueError).
        """
        label = name if callable(name) else (lambda i: f'{name} {i}')
        checked = (self._check_input(frame, label(i)) for i, frame in enumerate(frames))
        for i, out in enumerate(self._video(checked, tile)):
            yield self._check_output(out, label(i))

    def _video(self, frames, tile):
        frames = iter(frames)
        first = next(frames, None)
        if first is None:
            return
        frames = itertools.chain((first, ), frames)
        if tile == 'plan':
            tile = self.plan(*first.shape[-2:])
        model = self.model
        with torch.inference_mode():
            if model.stage1 is not None:
                stage1 = self._image_fn(model.stage1, tile)
                frames = (self_ensemble(stage1, f, self.num) for f in frames)
            if model.kind == 'recurrent':
                def stream(items):
                    return self._stream(items) if tile is None else tiled_stream(self._stream, items, tile,
                                                                                 self.tile_overlap)
                yield from ensemble_stream(stream, frames, self.num)
                return
            fn = self._image_fn(model.net, tile)
            if model.kind == 'window':
                frames = sliding_windows(frames, model.net.num_frame)
            for item in frames:
                yield self_ensemble(fn, item, self.num)


# ---------------------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------------------


def read_image(path):
    """Read an 8- or 16-bit grayscale, RGB or RGBA image.

    Returns:
        tuple: (RGB float32 array (h, w, 3) in [0, 1], info) where info records what :func:`write_image` needs to
        give the result the input's layout: dtype, channels (1, 3 or 4) and the alpha plane.
    """
    if not osp.isfile(path):
        raise InferenceError(f'no such file: {path}')
    with open(path, 'rb') as f:
        content = f.read()
    try:
        img = decode_stored(content, path)
    except ValueError as err:
        raise InferenceError(str(err)) from None
    channels = 1 if img.ndim == 2 else img.shape[2]
    alpha = img[..., 3] if channels == 4 else None
    scale = float(np.iinfo(img.dtype).max)
    if channels == 1:
        rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    else:
        rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32) / scale, {'dtype': img.dtype, 'channels': channels, 'alpha': alpha}


def _to_layout(rgb, info):
    """RGB float (h, w, 3) in [0, 1] -> the input's dtype and channel layout (OpenCV's BGR order)."""
    scale = float(np.iinfo(info['dtype']).max)
    out = (np.clip(rgb, 0, 1) * scale).round().astype(info['dtype'])
    if info['channels'] == 1:
        return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    bgr = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    if info['channels'] == 4:
        return np.dstack([bgr, info['alpha']])
    return bgr


def _makedirs(folder):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise InferenceError(f'cannot create output folder {folder}: {err.strerror or err}') from None


def write_image(path, rgb, info):
    """Write an RGB float image in the layout ``info`` recorded (:func:`read_image`)."""
    _makedirs(osp.dirname(osp.abspath(path)))
    if not cv2.imwrite(path, _to_layout(rgb, info)):
        folder = osp.dirname(osp.abspath(path))
        why = '' if os.access(folder, os.W_OK) else f': folder {folder} is not writable'
        raise InferenceError(f'cannot write {path}{why}')


def check_writable_format(path, info=None):
    ext = osp.splitext(path)[1].lower()
    if ext not in IMAGE_EXTS or not cv2.haveImageWriter(path):
        raise InferenceError(f'{path}: cannot write {ext or "files without an extension"} images; use one of '
                             f'{", ".join(IMAGE_EXTS)}')
    if info is not None and info['dtype'] == np.uint16 and ext not in ('.png', '.tif', '.tiff', '.pgm', '.ppm'):
        raise InferenceError(f'{path}: {ext} cannot hold the input\'s 16 bits; write .png or .tif')


def to_tensor(rgb, device):
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)


def to_array(t):
    return t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def side_by_side(inp, out):
    return np.concatenate([inp, out], axis=1)


def read_video(path):
    """Frames of a video file as RGB float arrays in [0, 1], read lazily; also its frame rate and frame count."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise InferenceError(f'cannot open video {path} (corrupt, or a codec OpenCV cannot decode)')
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def frames():
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        finally:
            cap.release()

    return frames(), fps, count


class VideoWriter:
    """Writes RGB float frames to a video file, opened at the first frame (which sets the size)."""

    def __init__(self, path, fps):
        self.path, self.fps, self.writer, self.count = path, fps, None, 0

    def write(self, rgb):
        bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
        if self.writer is None:
            _makedirs(osp.dirname(osp.abspath(self.path)))
            fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(osp.splitext(self.path)[1].lower(), 'mp4v'))
            self.writer = cv2.VideoWriter(self.path, fourcc, self.fps, (bgr.shape[1], bgr.shape[0]))
            if not self.writer.isOpened():
                raise InferenceError(f'cannot write video {self.path} (no encoder for this container here)')
        self.writer.write(bgr)
        self.count += 1

    def close(self):
        if self.writer is not None:
            self.writer.release()


# ---------------------------------------------------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------------------------------------------------


def kind_of(path):
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTS:
        return 'image'
    if ext in VIDEO_EXTS:
        return 'video'
    raise InferenceError(f'{path}: unsupported file type {ext or "(no extension)"}; images: {", ".join(IMAGE_EXTS)}; '
                         f'videos: {", ".join(VIDEO_EXTS)}')


def plan_jobs(input_path, output_path, model_kind):
    """What to do: a list of (kind, source, target) with kind 'image', 'video' or 'sequence' (a folder of frames)."""
    if osp.isdir(input_path):
        files = sorted(osp.relpath(osp.join(root, name), input_path) for root, _, names in os.walk(input_path)
                       for name in names if osp.splitext(name)[1].lower() in IMAGE_EXTS)
        if not files:
            raise InferenceError(f'no images ({", ".join(IMAGE_EXTS)}) in folder {input_path}')
        if osp.isfile(output_path):
            raise InferenceError(f'--output {output_path} is a file; a folder input needs a folder output')
        jobs = [('image', osp.join(input_path, f), osp.join(output_path, f)) for f in files]
        if model_kind != 'image':  # a video net restores a folder as the frames of one sequence
            return [('sequence', [s for _, s, _ in jobs], [t for _, _, t in jobs])]
        return jobs
    if not osp.exists(input_path):
        raise InferenceError(f'--input {input_path} does not exist')
    kind = kind_of(input_path)
    if osp.isdir(output_path) or output_path.endswith(os.sep) or not osp.splitext(output_path)[1]:
        output_path = osp.join(output_path, osp.basename(input_path))  # a folder: the input's name inside
    if kind_of(output_path) != kind:
        exts = ', '.join(IMAGE_EXTS if kind == 'image' else VIDEO_EXTS)
        raise InferenceError(f'--output {output_path}: the input is {"an image" if kind == "image" else "a video"}, '
                             f'so the output must be one too ({exts})')
    return [(kind, input_path, output_path)]


def _targets(jobs):
    for kind, _, target in jobs:
        yield from (target if kind == 'sequence' else [target])


def _check_folder(target, checked):
    """Refuse, before any work, a target whose folder cannot be made or written (``checked``: folders seen)."""
    folder = osp.dirname(osp.abspath(target))
    if folder in checked:
        return
    checked.add(folder)
    existing = folder
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        raise InferenceError(f'--output {target}: {existing} is a file, so no folder can be made there')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InferenceError(f'--output {target}: folder {existing} is not writable (permission denied)')


def check_targets(jobs, overwrite):
    """Refuse to overwrite an input, or an existing output without ``overwrite``; refuse targets in folders that
    cannot be written; check the image formats."""
    sources = {osp.realpath(s) for kind, src, _ in jobs for s in (src if kind == 'sequence' else [src])}
    existing, folders = [], set()
    for target in _targets(jobs):
        if osp.realpath(target) in sources:
            raise InferenceError(f'--output would overwrite the input {target}; choose another output path')
        if osp.isdir(target):
            raise InferenceError(f'--output {target} is a folder; it cannot be replaced by a file')
        if osp.exists(target):
            existing.append(target)
        _check_folder(target, folders)
        if kind_of(target) == 'image':
            check_writable_format(target)
    if existing and not overwrite:
        raise InferenceError(f'{len(existing)} output file(s) exist already (first: {existing[0]}); pass '
                             f'--overwrite to replace them')


def run_image(restorer, source, target, device, sbs=False):
    rgb, info = read_image(source)
    check_writable_format(target, info)
    out = to_array(restorer.image(to_tensor(rgb, device), name=source))
    write_image(target, side_by_side(rgb, out) if sbs else out, info)


def run_sequence(restorer, sources, targets, device, sbs=False, progress=True):
    """A folder of frames through a video net, one frame read and one written at a time."""
    infos = []

    def frames():
        size = None
        for source in sources:
            rgb, info = read_image(source)
            if size is not None and rgb.shape != size:
                raise InferenceError(f'{source}: {rgb.shape[1]}x{rgb.shape[0]}, but the sequence\'s first frame is '
                                     f'{size[1]}x{size[0]}; a sequence needs frames of one size')
            size = rgb.shape
            infos.append((rgb, info))
            yield to_tensor(rgb, device)

    bar = tqdm(total=len(sources), unit='frame', disable=not progress, leave=False)
    for i, out in enumerate(restorer.video(frames(), name=lambda i: sources[i])):
        rgb, info = infos[i]
        infos[i] = None  # only the frames a window or look-ahead still needs stay in memory
        write_image(targets[i], side_by_side(rgb, to_array(out)) if sbs else to_array(out), info)
        bar.update()
    bar.close()


def run_video(restorer, source, target, device, sbs=False, progress=True):
    frames, fps, count = read_video(source)
    inputs = collections.deque()

    def tensors():
        for rgb in frames:
            inputs.append(rgb)
            yield to_tensor(rgb, device)

    writer = VideoWriter(target, fps)
    bar = tqdm(total=count, unit='frame', disable=not progress, leave=False)
    try:
        for out in restorer.video(tensors(), name=f'{source} frame'):
            rgb = inputs.popleft()
            writer.write(side_by_side(rgb, to_array(out)) if sbs else to_array(out))
            bar.update()
    finally:
        writer.close()
        bar.close()
    if writer.count == 0:
        raise InferenceError(f'no frames could be decoded from {source}')
    return writer.count


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='deblurzoo-infer', description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    parser.add_argument('--model', required=True, help='registered arch name or option file (YAML)')
    parser.add_argument('--weights', help='checkpoint (default: the option file\'s path.pretrain_network_g)')
    parser.add_argument('--param-key', help='checkpoint key (default: params_ema, else params)')
    parser.add_argument('--input', required=True, help='image, folder or video file')
    parser.add_argument('--output', required=True, help='image, folder or video file (the input\'s kind)')
    parser.add_argument('--self-ensemble', type=int, choices=(0, 1, 4, 6, 8),
                        help='average over 4/6/8 flips and rotations (default: the option file\'s, else off)')
    parser.add_argument('--tile', default='auto',
                        help="tile side in pixels, 0 for none, or 'auto' (tile only if it would not fit; default)")
    parser.add_argument('--tile-overlap', type=int, default=64, help='overlap of neighbouring tiles (default: 64)')
    parser.add_argument('--max-memory', type=float, help='GiB the net may use with --tile auto (default: 80%% of '
                        'free GPU memory, or half the available RAM)')
    parser.add_argument('--fp16', action='store_true', help='half precision (CUDA only)')
    parser.add_argument('--device', default='auto', help="'auto' (a GPU if there is one), 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument('--side-by-side', action='store_true', help='write input and result side by side')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.tile != 'auto':
        try:
            args.tile = int(args.tile)
        except ValueError:
            parser.error(f"--tile: a number of pixels, 0 or 'auto', got {args.tile!r}")
        if args.tile < 0:
            parser.error('--tile: must be >= 0')
        if args.tile and args.tile < args.tile_overlap + 32:
            parser.error(f'--tile ({args.tile}) must be at least --tile-overlap ({args.tile_overlap}) + 32')
    return args


def infer(args):
    """Run the CLI's job (``args`` from :func:`parse_args`); returns the list of files written."""
    if args.weights is None and not args.model.endswith(('.yml', '.yaml')):
        raise InferenceError(f'--weights: a checkpoint for {args.model} is needed (an untrained net does not deblur)')
    model = load_model(args.model, args.weights, args.param_key, args.device)
    max_memory = None if args.max_memory is None else int(args.max_memory * 2**30)
    restorer = Restorer(model, args.self_ensemble, args.tile, args.tile_overlap, max_memory, args.fp16)
    jobs = plan_jobs(args.input, args.output, model.kind if model.stage1 is None else 'window')
    check_targets(jobs, args.overwrite)
    device = model.device
    progress = not args.quiet
    written = []
    for kind, source, target in tqdm(jobs, unit='file', disable=not progress or len(jobs) == 1):
        if kind == 'image':
            run_image(restorer, source, target, device, args.side_by_side)
            written.append(target)
        elif kind == 'sequence':
            run_sequence(restorer, source, target, device, args.side_by_side, progress)
            written.extend(target)
        else:
            run_video(restorer, source, target, device, args.side_by_side, progress)
            written.append(target)
    return written


def main(argv=None):
    args = parse_args(argv)
    try:
        written = infer(args)
    except (InferenceError, MemoryError, OSError) as err:  # OSError: disk full, a file vanished, ... (it names them)
        print(f'deblurzoo-infer: error: {" ".join(str(err).split())}', file=sys.stderr)  # on one line
        return 2
    if not args.quiet:
        where = written[0] if len(written) == 1 else f'{len(written)} files under {args.output}'
        print(f'deblurzoo-infer: wrote {where}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
