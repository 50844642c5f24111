"""Bad and unusual inputs to deblurzoo-infer (deblurzoo/inference/): one table of cases and what must happen.

Each case writes its files into its own folder and runs the CLI entry (``main(argv)``: an error is one line
``deblurzoo-infer: error: ...`` on stderr with exit status 2, never a traceback) or, where the CLI cannot reach the
case (tensors), the public API (:class:`InferenceError`, a ``ValueError``). An error must contain every fragment in
the table, which name the file, key or value at fault (``{t}``: the case's folder, ``{k}``: the shared checkpoints'
folder). ``OK`` cases must succeed, and their own checks see the result (size, depth and layout of the input).

Nets are tiny and untrained; ``AtrousNet`` starts as the identity (its output conv is zero), so pixels must come back
exactly, and it halves the resolution inside, so odd and tiny sizes exercise its padding.
"""
import os
import pathlib

import cv2
import numpy as np
import pytest
import torch
import yaml

import deblurzoo  # noqa: F401  (registers everything; patches BasicSR first)
from basicsr.archs import build_network
from deblurzoo.inference.cli import main
from deblurzoo.inference.loader import load_model
from test_registry import TINY

OK = ()  # the case must succeed
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


class Kit:
    """Checkpoints and option files shared by the cases (written once per module)."""

    def __init__(self, root):
        self.root = root
        self.atrous = self.save('AtrousNet')  # the identity
        self.svdn = self.save('SVDN')
        self.option = self.write_option('atrous.yml', {'type': 'AtrousNet', **TINY['AtrousNet']}, self.atrous)
        self.perturbed = self.write_option('perturbed.yml', {'type': 'AtrousNet', **TINY['AtrousNet']},
                                           self.save('AtrousNet', 'perturbed.pth', perturb=True))

    def save(self, arch, name=None, perturb=False, folder=None, **kwargs):
        torch.manual_seed(0)
        net = build_network({'type': arch, **TINY[arch], **kwargs})
        if perturb:
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(0.05 * torch.randn_like(p))
        path = (folder or self.root) / (name or f'{arch}.pth')
        torch.save({'params': net.state_dict()}, path)
        return path

    def write_option(self, path, network_g, weights, folder=None, **extra):
        path = (folder or self.root) / path
        opt = {'network_g': network_g, 'path': {'pretrain_network_g': str(weights), 'param_key_g': 'params'}, **extra}
        path.write_text(yaml.safe_dump(opt))
        return path

    def cli(self, src, dst, *extra, model=None):
        """argv for one run on the CPU, untiled unless ``extra`` says otherwise (tiling probes cost time)."""
        return ['--model', model or self.option, '--input', src, '--output', dst, '--device', 'cpu', '--tile', '0',
                '--quiet', *extra]


@pytest.fixture(scope='module')
def kit(tmp_path_factory):
    return Kit(tmp_path_factory.mktemp('ckpt'))


def _image(h=24, w=32, channels=3, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=np.uint64).astype(dtype)


def _smooth(h=96, w=128):
    """A photo-like image (random pixels make tiny JPEGs that OpenCV refuses when cut, unlike real photos)."""
    return cv2.GaussianBlur(_image(h, w), (0, 0), 3)


def _png(path, img=None):
    assert cv2.imwrite(str(path), _image() if img is None else img)
    return path


def _jpeg(img):
    return cv2.imencode('.jpg', img)[1].tobytes()


def _unchanged(path, data):
    def check(t):
        assert path.read_bytes() == data, f'{path} was modified'
    return check


def _same_image(src, dst):
    """The identity net gives the input back: same size, depth, layout and pixels."""
    def check(t):
        img, out = cv2.imread(str(src), cv2.IMREAD_UNCHANGED), cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
        assert out is not None, f'{dst} was not written'
        assert (out.dtype, out.shape) == (img.dtype, img.shape)
        np.testing.assert_array_equal(out, img)
    return check


def _same_size(src, dst, changed=True):
    def check(t):
        img, out = cv2.imread(str(src), cv2.IMREAD_UNCHANGED), cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
        assert (out.dtype, out.shape) == (img.dtype, img.shape)
        assert not changed or not np.array_equal(out, img)  # the perturbed net did run
    return check


def _absent(*paths):
    def check(t):
        for path in paths:
            assert not path.exists(), f'{path} exists'
    return check


# ---------------------------------------------------------------------------------------------------------------------
# input files
# ---------------------------------------------------------------------------------------------------------------------


def corrupt_png(t, kit):
    (t / 'corrupt.png').write_bytes(PNG_SIGNATURE + bytes(range(256)))
    return kit.cli(t / 'corrupt.png', t / 'out.png'), _absent(t / 'out.png')


def truncated_png(t, kit):
    data = cv2.imencode('.png', _image())[1].tobytes()
    (t / 'cut.png').write_bytes(data[:len(data) // 3])
    return kit.cli(t / 'cut.png', t / 'out.png')


def truncated_jpeg(t, kit):
    data = _jpeg(_smooth())
    (t / 'cut.jpg').write_bytes(data[:len(data) * 3 // 5])
    assert cv2.imread(str(t / 'cut.jpg')) is not None  # OpenCV alone takes it (grey fill): infer must not
    return kit.cli(t / 'cut.jpg', t / 'out.jpg'), _absent(t / 'out.jpg')


def truncated_jpeg_with_thumbnail(t, kit):
    """The EXIF thumbnail's own end-of-image marker must not make a cut file look complete."""
    thumb, data = _jpeg(_smooth(16, 16)), _jpeg(_smooth())
    payload = b'Exif\0\0' + thumb
    data = data[:2] + b'\xff\xe1' + (len(payload) + 2).to_bytes(2, 'big') + payload + data[2:]
    cut = data[:len(data) * 3 // 5]
    assert b'\xff\xd9' in cut
    (t / 'cut.jpg').write_bytes(cut)
    return kit.cli(t / 'cut.jpg', t / 'out.jpg')


def jpeg_with_trailing_data(t, kit):
    """Bytes after the end of image (a motion photo's video, a camera's trailer) are not a truncation."""
    (t / 'motion.jpg').write_bytes(_jpeg(_smooth(40, 56)) + b'\0\0\0\x18ftypmp42' + bytes(64))
    return kit.cli(t / 'motion.jpg', t / 'out.png'), _same_image(t / 'motion.jpg', t / 'out.png')


def zero_byte_file(t, kit):
    (t / 'empty.png').write_bytes(b'')
    return kit.cli(t / 'empty.png', t / 'out.png')


def unsupported_type(t, kit):
    (t / 'clip.gif').write_bytes(b'GIF89a' + bytes(32))
    return kit.cli(t / 'clip.gif', t / 'out.png')


def missing_input(t, kit):
    return kit.cli(t / 'nope.png', t / 'out.png')


def empty_folder(t, kit):
    (t / 'empty').mkdir()
    return kit.cli(t / 'empty', t / 'out')


def folder_without_images(t, kit):
    (t / 'docs').mkdir()
    (t / 'docs' / 'notes.txt').write_text('not an image')
    (t / 'docs' / 'clip.gif').write_bytes(b'GIF89a')
    return kit.cli(t / 'docs', t / 'out'), _absent(t / 'out')


def float_tiff_with_nan(t, kit):
    img = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    img[3, 4] = [np.nan, np.inf, -np.inf]
    assert cv2.imwrite(str(t / 'nan.tif'), img)
    return kit.cli(t / 'nan.tif', t / 'out.tif')


def corrupt_video(t, kit):
    (t / 'bad.mp4').write_bytes(b'\0' * 100)
    return kit.cli(t / 'bad.mp4', t / 'out.mp4')


def sequence_frames_differ(t, kit):
    weights = kit.save('SARNRecurrent', folder=t)
    option = kit.write_option('rec.yml', {'type': 'SARNRecurrent', **TINY['SARNRecurrent']}, weights, folder=t)
    (t / 'seq').mkdir()
    _png(t / 'seq' / 'a.png', _image(24, 32))
    _png(t / 'seq' / 'b.png', _image(32, 40))
    return kit.cli(t / 'seq', t / 'out', model=option)


def _layout(channels, dtype, ext='.png'):
    def setup(t, kit):
        _png(t / f'in{ext}', _image(21, 27, channels, dtype))
        return kit.cli(t / f'in{ext}', t / f'out{ext}'), _same_image(t / f'in{ext}', t / f'out{ext}')
    return setup


def odd_size_with_a_downsampling_net(t, kit):
    """37x53 through a net that halves the resolution (pads to even sizes and crops back), with all 8 transforms."""
    _png(t / 'odd.png', _image(37, 53))
    return (kit.cli(t / 'odd.png', t / 'out.png', '--self-ensemble', '8', model=kit.perturbed),
            _same_size(t / 'odd.png', t / 'out.png'))


def smaller_than_the_net_minimum(h, w):
    def setup(t, kit):  # AtrousNet needs 16x16 inside (min_size): it pads
        _png(t / 'tiny.png', _image(h, w))
        return (kit.cli(t / 'tiny.png', t / 'out.png', '--self-ensemble', '8', model=kit.perturbed),
                _same_size(t / 'tiny.png', t / 'out.png', changed=False))
    return setup


def smaller_than_the_tile(t, kit):
    _png(t / 'small.png', _image(40, 56))
    return (kit.cli(t / 'small.png', t / 'out.png', '--tile', '128'),
            _same_image(t / 'small.png', t / 'out.png'))


def odd_size_in_tiles(t, kit):
    _png(t / 'odd.png', _image(101, 131))
    return (kit.cli(t / 'odd.png', t / 'out.png', '--tile', '96', '--tile-overlap', '32', model=kit.perturbed),
            _same_size(t / 'odd.png', t / 'out.png'))


# ---------------------------------------------------------------------------------------------------------------------
# tensors through the API (the CLI's 8- and 16-bit images are always finite)
# ---------------------------------------------------------------------------------------------------------------------


def api_nan_tensor(t, kit):
    x = torch.rand(1, 3, 16, 16)
    x[0, 1, 2, 3] = float('nan')
    return lambda: load_model(str(kit.option)).restorer().image(x)


def api_inf_frame(t, kit):
    frames = [torch.rand(1, 3, 16, 16), torch.full((1, 3, 16, 16), float('inf'))]
    return lambda: list(load_model(str(kit.option)).restorer().video(frames))


# ---------------------------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def checkpoint_not_found(t, kit):
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', t / 'nope.pth')


def truncated_checkpoint(t, kit):
    data = kit.atrous.read_bytes()
    (t / 'cut.pth').write_bytes(data[:len(data) // 2])
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', t / 'cut.pth')


def truncated_legacy_checkpoint(t, kit):
    """The pickle format torch.save wrote before 1.6."""
    torch.save(torch.load(kit.atrous), t / 'old.pth', _use_new_zipfile_serialization=False)
    data = (t / 'old.pth').read_bytes()
    (t / 'old.pth').write_bytes(data[:len(data) // 2])
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', t / 'old.pth')


def image_as_weights(t, kit):
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', t / 'a.png')


def zero_byte_checkpoint(t, kit):
    (t / 'empty.pth').write_bytes(b'')
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', t / 'empty.pth')


def checkpoint_is_a_tensor(t, kit):
    torch.save(torch.zeros(3), t / 'tensor.pth')
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', t / 'tensor.pth')


class _Touch:
    """Unpickling this creates ``path``: proof that code in a pickle ran."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path, ))


def pickled_code(t, kit):
    marker = t / 'pwned'
    torch.save({'params': torch.load(kit.atrous)['params'], 'extra': _Touch(marker)}, t / 'evil.pth')
    _png(t / 'a.png')

    def check(t):
        assert not marker.exists(), 'the pickled code ran'
        torch.load(t / 'evil.pth', weights_only=False)  # the control: the payload does run when allowed to
        assert marker.exists()
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', t / 'evil.pth'), check


def checkpoint_of_another_arch(t, kit):
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', kit.svdn)


def checkpoint_of_other_widths(t, kit):
    wide = kit.save('AtrousNet', folder=t, num_feat=8)
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', wide)


def checkpoint_without_the_param_key(t, kit):
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--param-key', 'params_ema')


def _broken_weights(t, kit, value, name):
    state = torch.load(kit.atrous)['params']
    state['out.bias'] = torch.full_like(state['out.bias'], value)
    torch.save({'params': state}, t / name)
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', t / name), _absent(t / 'out.png')


def nan_weights(t, kit):
    return _broken_weights(t, kit, float('nan'), 'nan.pth')


def weights_giving_inf(t, kit):
    """An inf is not refused at loading (a mask buffer may hold one): the result is, before anything is written."""
    return _broken_weights(t, kit, float('inf'), 'inf.pth')


# ---------------------------------------------------------------------------------------------------------------------
# models and option files
# ---------------------------------------------------------------------------------------------------------------------


def unknown_arch_name(t, kit):
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', '--weights', kit.svdn, model='SVDNet')


def _option_case(network_g, name='opt.yml', weights=None, **extra):
    def setup(t, kit):
        option = kit.write_option(name, network_g, weights or kit.atrous, folder=t, **extra)
        _png(t / 'a.png')
        return kit.cli(t / 'a.png', t / 'out.png', model=option)
    return setup


def _raw_option(text):
    def setup(t, kit):
        (t / 'opt.yml').write_text(text)
        _png(t / 'a.png')
        return kit.cli(t / 'a.png', t / 'out.png', model=t / 'opt.yml')
    return setup


def option_without_weights(t, kit):
    (t / 'opt.yml').write_text(yaml.safe_dump({'network_g': {'type': 'AtrousNet', **TINY['AtrousNet']}}))
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.png', model=t / 'opt.yml')


# ---------------------------------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------------------------------


def output_exists(t, kit):
    _png(t / 'a.png')
    (t / 'out.png').write_bytes(b'mine')
    return kit.cli(t / 'a.png', t / 'out.png'), _unchanged(t / 'out.png', b'mine')


def output_is_the_input(t, kit):
    data = _png(t / 'a.png').read_bytes()
    return kit.cli(t / 'a.png', t / 'a.png', '--overwrite'), _unchanged(t / 'a.png', data)


def output_folder_not_writable(t, kit):
    _png(t / 'a.png')
    (t / 'ro').mkdir()
    (t / 'ro').chmod(0o500)
    if os.access(t / 'ro', os.W_OK):
        (t / 'ro').chmod(0o700)
        pytest.skip('this process writes through permissions (root, or CAP_DAC_OVERRIDE)')

    def check(t):
        (t / 'ro').chmod(0o700)
        assert not list((t / 'ro').iterdir())
    return kit.cli(t / 'a.png', t / 'ro' / 'sub' / 'out.png'), check


def output_under_a_file(t, kit):
    _png(t / 'a.png')
    (t / 'notes.txt').write_text('a file, not a folder')
    return kit.cli(t / 'a.png', t / 'notes.txt' / 'out.png'), _unchanged(t / 'notes.txt', b'a file, not a folder')


def sixteen_bits_to_jpeg(t, kit):
    _png(t / 'deep.png', _image(dtype=np.uint16))
    return kit.cli(t / 'deep.png', t / 'out.jpg')


def image_to_video(t, kit):
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.mp4')


def unsupported_output_type(t, kit):
    _png(t / 'a.png')
    return kit.cli(t / 'a.png', t / 'out.gif')


# ---------------------------------------------------------------------------------------------------------------------
# the table: (id, setup, the error's fragments or OK[, marks])
# ---------------------------------------------------------------------------------------------------------------------

ATROUS = {'type': 'AtrousNet', **TINY['AtrousNet']}

CASES = [
    # input files
    ('corrupt-png', corrupt_png, ['{t}/corrupt.png: truncated PNG']),
    ('truncated-png', truncated_png, ['{t}/cut.png: truncated PNG: no IEND chunk']),
    ('truncated-jpeg', truncated_jpeg, ['{t}/cut.jpg: truncated JPEG: it ends before its end-of-image marker']),
    ('truncated-jpeg-with-exif-thumbnail', truncated_jpeg_with_thumbnail, ['{t}/cut.jpg: truncated JPEG']),
    ('jpeg-with-trailing-data', jpeg_with_trailing_data, OK),
    ('zero-byte-file', zero_byte_file, ['{t}/empty.png: empty file (0 bytes)']),
    ('unsupported-file-type', unsupported_type, ['{t}/clip.gif: unsupported file type .gif']),
    ('missing-input', missing_input, ['--input {t}/nope.png does not exist']),
    ('empty-folder', empty_folder, ['no images', 'in folder {t}/empty']),
    ('folder-without-images', folder_without_images, ['no images', 'in folder {t}/docs']),
    ('float32-tiff-with-nan', float_tiff_with_nan, ['{t}/nan.tif: float32 pixels are not supported']),
    ('corrupt-video', corrupt_video, ['cannot open video {t}/bad.mp4']),
    ('sequence-frames-differ', sequence_frames_differ, ['{t}/seq/b.png: 40x32', "first frame is 32x24"]),
    ('gray-png-8bit', _layout(1, np.uint8), OK),
    ('rgba-png-8bit', _layout(4, np.uint8), OK),
    ('rgb-png-16bit', _layout(3, np.uint16), OK),
    ('gray-tiff-16bit', _layout(1, np.uint16, '.tif'), OK),
    ('odd-size-37x53-downsampling-net', odd_size_with_a_downsampling_net, OK),
    ('one-pixel-image', smaller_than_the_net_minimum(1, 1), OK),
    ('2x3-below-net-minimum', smaller_than_the_net_minimum(2, 3), OK),
    ('smaller-than-tile', smaller_than_the_tile, OK),
    ('odd-size-in-tiles', odd_size_in_tiles, OK),
    # tensors (API)
    ('api-nan-in-input-tensor', api_nan_tensor, ['input tensor holds 1 NaN values']),
    ('api-inf-in-a-frame', api_inf_frame, ['input frame 1 holds 768 inf values']),
    # checkpoints
    ('checkpoint-not-found', checkpoint_not_found, ['checkpoint not found: {t}/nope.pth']),
    ('truncated-checkpoint', truncated_checkpoint, ['cannot read checkpoint {t}/cut.pth: truncated or damaged']),
    ('truncated-legacy-checkpoint', truncated_legacy_checkpoint, ['cannot read checkpoint {t}/old.pth: truncated']),
    ('zero-byte-checkpoint', zero_byte_checkpoint, ['checkpoint {t}/empty.pth is empty (0 bytes)']),
    ('image-as-weights', image_as_weights, ["{t}/a.png is not a PyTorch checkpoint", "starts with b'\\x89PNG'"]),
    ('checkpoint-is-a-tensor', checkpoint_is_a_tensor, ['checkpoint {t}/tensor.pth holds a Tensor, not a state dict']),
    ('checkpoint-with-pickled-code', pickled_code,
     ['refusing to load {t}/evil.pth', 'weights_only=True', 'found: ']),
    ('checkpoint-of-another-arch', checkpoint_of_another_arch,
     ["checkpoint {k}/SVDN.pth ['params'] does not fit AtrousNet", 'missing keys (45): blocks.0.', 'unexpected keys']),
    ('checkpoint-of-other-widths', checkpoint_of_other_widths,
     ['{t}/AtrousNet.pth', 'shape mismatches (checkpoint vs net)', 'downs.0.0.weight (16, 8, 3, 3) vs (8, 4, 3, 3)']),
    ('checkpoint-without-param-key', checkpoint_without_the_param_key,
     ["checkpoint {k}/AtrousNet.pth has no key 'params_ema'; it has: params"]),
    ('checkpoint-with-nan-weights', nan_weights, ["checkpoint {t}/nan.pth ['params'] has NaN weights in 1 tensor(s): "
                                                  'out.bias']),
    ('weights-giving-inf-output', weights_giving_inf, ['AtrousNet with the weights in {t}/inf.pth gave 2304 inf '
                                                       'values for {t}/a.png; refusing']),
    # models and option files
    ('unknown-arch-name', unknown_arch_name, ["--model 'SVDNet' is neither", "(did you mean 'SVDN'?)"]),
    ('unknown-arch-in-option-file', _option_case({'type': 'AtrousNe'}),
     ["network_g.type: no arch 'AtrousNe' is registered (did you mean 'AtrousNet'?)"]),
    ('unknown-constructor-key', _option_case({**ATROUS, 'num_feats': 4}),
     ["network_g: AtrousNet: unknown key(s) 'num_feats' (did you mean 'num_feat'?)",
      'Accepted keys: num_in_ch=3, num_out_ch=3, num_feat=64']),
    ('missing-constructor-key', _option_case({'type': 'RRDBNet', 'num_feat': 4, 'num_block': 1}),
     ["network_g: RRDBNet: missing required key(s) 'num_in_ch', 'num_out_ch'",
      'Accepted keys: num_in_ch, num_out_ch, scale=4, num_feat=64']),
    ('constructor-value-refused', _option_case({**ATROUS, 'num_down': 0}),
     ['network_g: AtrousNet(', 'num_down=0', 'failed: ValueError: AtrousNet: num_down must be at least 1, got 0']),
    ('bad-self-ensemble-in-option-file', _option_case(ATROUS, val={'self_ensemble': 3}),
     ['{t}/opt.yml: val.self_ensemble', 'got 3']),
    ('option-file-not-a-mapping', _raw_option('- network_g\n- path\n'),
     ["option file '{t}/opt.yml': the top level must be a mapping of keys, got list"]),
    ('option-file-bad-yaml', _raw_option('network_g: {type: AtrousNet\n'),
     ["option file '{t}/opt.yml': line 2, column 1: while parsing a flow mapping expected ',' or '}}'"]),
    ('option-file-without-weights', option_without_weights,
     ['{t}/opt.yml: path.pretrain_network_g is empty; pass --weights']),
    # outputs
    ('output-exists', output_exists, ['exist already (first: {t}/out.png); pass --overwrite']),
    ('output-is-the-input', output_is_the_input, ['--output would overwrite the input {t}/a.png']),
    ('output-folder-not-writable', output_folder_not_writable,
     ['--output {t}/ro/sub/out.png: folder {t}/ro is not writable']),
    ('output-under-a-file', output_under_a_file, ['--output {t}/notes.txt/out.png: {t}/notes.txt is a file']),
    ('16-bit-input-to-jpeg', sixteen_bits_to_jpeg, ["{t}/out.jpg: .jpg cannot hold the input's 16 bits"]),
    ('image-to-video-output', image_to_video, ['--output {t}/out.mp4: the input is an image']),
    ('unsupported-output-type', unsupported_output_type, ['{t}/out.gif: unsupported file type .gif']),
]


def _params():
    for case_id, setup, expected, *marks in CASES:
        yield pytest.param(setup, expected, id=case_id, marks=marks)


@pytest.mark.parametrize('setup,expected', _params())
def test_inference_input(setup, expected, tmp_path, kit, capsys):
    run = setup(tmp_path, kit)
    call, check = run if isinstance(run, tuple) else (run, None)
    if callable(call):  # the API
        if not expected:
            call()
        else:
            with pytest.raises(ValueError) as info:
                call()
            message = str(info.value)
    else:
        status = main([str(arg) for arg in call])
        err = capsys.readouterr().err.strip()
        if not expected:
            assert status == 0, err
        else:
            assert status == 2 and len(err.splitlines()) == 1 and err.startswith('deblurzoo-infer: error: '), err
            message = err
    for fragment in expected:
        assert fragment.format(t=tmp_path, k=kit.root) in message
    if check is not None:
        check(tmp_path)


def test_the_table_has_distinct_readable_ids():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) >= 10
    assert all(i == i.lower() and ' ' not in i for i in ids)
