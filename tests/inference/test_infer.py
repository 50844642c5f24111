"""deblurzoo-infer (deblurzoo/inference/): files in and out, model loading, video nets, tiling, errors.

Networks are tiny and untrained. ``AtrousNet`` starts as the identity (its output conv is zero), so it shows that
pixels come back exactly in their own size, bit depth and channel layout.
"""
import os

import cv2
import numpy as np
import pytest
import torch
import yaml

import deblurzoo  # noqa: F401  (registers everything; patches BasicSR first)
from basicsr.archs import build_network
from basicsr.data.data_util import generate_frame_indices
from deblurzoo.data.data_util import jpeg_is_complete
from deblurzoo.inference.checkpoint import load_weights
from deblurzoo.inference.cli import main
from deblurzoo.inference.loader import LoadedModel, load_model
from deblurzoo.inference.test_time import sliding_windows
from data_factory import load_script
from test_registry import TINY


def _perturb(net, scale=0.05):
    """Move every weight a little, so that nets that start as the identity (zero output convs) are not."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
    return net


def _save(tmp_path, arch, key='params', name=None, seed=0, perturb=False, **kwargs):
    torch.manual_seed(seed)
    net = build_network({'type': arch, **TINY[arch], **kwargs})
    if perturb:
        _perturb(net)
    path = tmp_path / (name or f'{arch}.pth')
    torch.save({key: net.state_dict()}, path)
    return str(path), net.eval()


def _option(tmp_path, arch, ckpt, **extra):
    opt = {'name': 'x', 'model_type': 'DeblurModel', 'network_g': {'type': arch, **TINY[arch]},
           'path': {'pretrain_network_g': ckpt, 'param_key_g': 'params'}, **extra}
    path = tmp_path / f'test_{arch}.yml'
    path.write_text(yaml.safe_dump(opt))
    return str(path)


def _run(*argv):
    return main([*map(str, argv), '--quiet'])


def _image(h=40, w=56, channels=3, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=np.uint64).astype(dtype)


def _write_video(path, frames, fps=24.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()


def _tiny(arch, seed=0, **kwargs):
    torch.manual_seed(seed)
    net = build_network({'type': arch, **TINY[arch], **kwargs}).eval()
    return LoadedModel(net, {'type': arch, **TINY[arch], **kwargs})


# ---------------------------------------------------------------------------------------------------------------------
# files: layouts, folders, videos
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('channels,dtype,ext', [(3, np.uint8, '.png'), (3, np.uint16, '.png'), (1, np.uint8, '.png'),
                                                (1, np.uint16, '.tif'), (4, np.uint8, '.png'), (4, np.uint16, '.png'),
                                                (3, np.uint8, '.bmp')])
def test_an_image_comes_back_in_its_own_size_depth_and_layout(tmp_path, channels, dtype, ext):
    ckpt, _ = _save(tmp_path, 'AtrousNet')  # the identity at initialisation; gray -> RGB -> gray is exact
    img = _image(37, 45, channels, dtype)  # odd sizes
    src, dst = tmp_path / f'in{ext}', tmp_path / 'out' / f'in{ext}'
    cv2.imwrite(str(src), img)
    assert _run('--model', _option(tmp_path, 'AtrousNet', ckpt), '--input', src, '--output',
                tmp_path / 'out') == 0
    out = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
    assert out.dtype == dtype and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_a_real_net_changes_the_pixels_but_keeps_alpha(tmp_path):
    ckpt, net = _save(tmp_path, 'SVDN')
    img = _image(32, 40, 4)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    _run('--model', _option(tmp_path, 'SVDN', ckpt), '--input', tmp_path / 'a.png', '--output', tmp_path / 'b.png')
    out = cv2.imread(str(tmp_path / 'b.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(out[..., 3], img[..., 3])
    rgb = torch.from_numpy(cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB).transpose(2, 0, 1) / 255.).float()[None]
    with torch.no_grad():
        expected = net(rgb)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    expected = cv2.cvtColor((expected * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    assert np.abs(out[..., :3].astype(int) - expected).max() <= 1


def test_a_folder_keeps_relative_names_and_side_by_side_doubles_the_width(tmp_path):
    ckpt, _ = _save(tmp_path, 'AtrousNet')
    (tmp_path / 'in' / 'seq').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), _image(24, 32))
    cv2.imwrite(str(tmp_path / 'in' / 'seq' / 'b.jpg'), _image(20, 28, seed=1))
    (tmp_path / 'in' / 'notes.txt').write_text('not an image')
    _run('--model', _option(tmp_path, 'AtrousNet', ckpt), '--input', tmp_path / 'in', '--output', tmp_path / 'out',
         '--side-by-side')
    written = sorted(str(p.relative_to(tmp_path / 'out')) for p in (tmp_path / 'out').rglob('*') if p.is_file())
    assert written == ['a.png', os.path.join('seq', 'b.jpg')]
    pair = cv2.imread(str(tmp_path / 'out' / 'a.png'))
    assert pair.shape == (24, 64, 3)
    np.testing.assert_array_equal(pair[:, :32], pair[:, 32:])  # identity net: input | output alike


def test_a_video_keeps_its_frame_count_size_and_rate(tmp_path):
    ckpt, _ = _save(tmp_path, 'SVDN')
    frames = [_image(48, 64, seed=i) for i in range(7)]
    _write_video(tmp_path / 'in.mp4', frames, fps=24.0)
    _run('--model', _option(tmp_path, 'SVDN', ckpt), '--input', tmp_path / 'in.mp4', '--output', tmp_path / 'out.mp4')
    cap = cv2.VideoCapture(str(tmp_path / 'out.mp4'))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 7
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (64, 48)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(24.0)


def test_a_video_net_restores_a_video_and_a_folder_as_one_sequence(tmp_path):
    ckpt, net = _save(tmp_path, 'SARNRecurrent')
    frames = [_image(32, 40, seed=i) for i in range(5)]
    (tmp_path / 'seq').mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / 'seq' / f'{i:05d}.png'), frame)
    _run('--model', _option(tmp_path, 'SARNRecurrent', ckpt), '--input', tmp_path / 'seq', '--output', tmp_path / 'out')
    clip = torch.stack([torch.from_numpy(cv2.cvtColor(f, cv2.COLOR_BGR2RGB).transpose(2, 0, 1) / 255.).float()
                        for f in frames])[None]
    with torch.no_grad():
        expected = net(clip)[0].clamp(0, 1)
    for i in range(5):
        out = cv2.cvtColor(cv2.imread(str(tmp_path / 'out' / f'{i:05d}.png')), cv2.COLOR_BGR2RGB)
        want = (expected[i].permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(out.astype(float) - want).max() <= 1
    _write_video(tmp_path / 'in.avi', frames)
    _run('--model', _option(tmp_path, 'SARNRecurrent', ckpt), '--input', tmp_path / 'in.avi', '--output',
         tmp_path / 'out.avi')
    cap = cv2.VideoCapture(str(tmp_path / 'out.avi'))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_an_option_file_gives_the_net_the_weights_and_the_self_ensemble(tmp_path):
    ckpt, _ = _save(tmp_path, 'SVDN')
    option = _option(tmp_path, 'SVDN', ckpt, val={'self_ensemble': 4})
    model = load_model(option)
    assert model.arch == 'SVDN' and model.weights == ckpt and model.self_ensemble == 4 and model.kind == 'image'
    calls = []
    model.net.register_forward_hook(lambda *a: calls.append(1))
    model.restorer().image(torch.rand(1, 3, 24, 32))
    assert len(calls) == 4
    calls.clear()
    model.restorer(self_ensemble=1).image(torch.rand(1, 3, 24, 32))
    assert len(calls) == 1


def test_params_ema_is_preferred_and_param_key_chooses(tmp_path):
    torch.manual_seed(0)
    a, b = build_network({'type': 'SVDN', **TINY['SVDN']}), build_network({'type': 'SVDN', **TINY['SVDN']})
    torch.save({'params': a.state_dict(), 'params_ema': b.state_dict()}, tmp_path / 'c.pth')
    net = build_network({'type': 'SVDN', **TINY['SVDN']})
    assert load_weights(net, str(tmp_path / 'c.pth')) == 'params_ema'
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in net.state_dict().items())
    assert load_weights(net, str(tmp_path / 'c.pth'), 'params') == 'params'
    assert all(torch.equal(v, a.state_dict()[k]) for k, v in net.state_dict().items())
    torch.save({f'module.{k}': v for k, v in a.state_dict().items()}, tmp_path / 'bare.pth')  # DDP, bare
    assert load_weights(net, str(tmp_path / 'bare.pth')) is None
    assert all(torch.equal(v, a.state_dict()[k]) for k, v in net.state_dict().items())


def test_a_two_stage_option_file_runs_stage1_on_every_frame(tmp_path):
    s1, stage1 = _save(tmp_path, 'AtrousNet', seed=1, perturb=True)
    s2, net = _save(tmp_path, 'MLFANet', seed=2, perturb=True, num_frame=3)
    opt = {'network_g': {'type': 'MLFANet', **TINY['MLFANet'], 'num_frame': 3},
           'network_stage1': {'type': 'AtrousNet', **TINY['AtrousNet']},
           'path': {'pretrain_network_g': s2, 'pretrain_network_stage1': s1}}
    (tmp_path / 'test_mlfa.yml').write_text(yaml.safe_dump(opt))
    model = load_model(str(tmp_path / 'test_mlfa.yml'))
    assert model.kind == 'window' and model.stage1 is not None
    clip = torch.rand(1, 4, 3, 32, 32)
    outs = list(model.restorer().video(clip.unbind(1)))
    with torch.no_grad():
        pre = torch.stack([stage1(clip[:, i]) for i in range(4)], 1)
        want = [net(pre[:, generate_frame_indices(i, 4, 3, 'replicate')]) for i in range(4)]
    for out, expected in zip(outs, want):
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# video nets hold only what they need
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('num_frame,t', [(3, 1), (3, 5), (5, 2), (5, 7)])
def test_sliding_windows_are_basicsrs_replicate_windows(num_frame, t):
    frames = [torch.full((1, 1, 1, 1), float(i)) for i in range(t)]
    clips = list(sliding_windows(iter(frames), num_frame))
    assert len(clips) == t
    for i, clip in enumerate(clips):
        assert clip.flatten().tolist() == [float(j) for j in generate_frame_indices(i, t, num_frame, 'replicate')]


@pytest.mark.parametrize('arch,ahead', [('SARNRecurrent', 2), ('SARNMulti', 2)])
def test_video_nets_read_only_a_few_frames_ahead(arch, ahead):
    model = _tiny(arch)
    read = []

    def frames():
        for i in range(8):
            read.append(i)
            yield torch.rand(1, 3, 16, 16)

    for i, _ in enumerate(model.restorer().video(frames())):
        assert len(read) <= i + 1 + ahead  # frames read before frame i came out
    assert i == 7


def test_streams_tile_and_ensemble_like_the_whole_clip(tmp_path):
    model = _tiny('SARNRecurrent')
    clip = torch.rand(1, 3, 3, 40, 48)
    whole = list(model.restorer().video(clip.unbind(1)))
    with torch.no_grad():
        torch.testing.assert_close(torch.stack(whole, 1), model.net(clip))
        tiled = list(model.restorer(tile=200).video(clip.unbind(1)))  # one tile: the plain stream
        torch.testing.assert_close(torch.stack(tiled, 1), model.net(clip))
    from deblurzoo.inference.test_time import apply_transform, invert_transform, TRANSFORMS
    ens = list(model.restorer(self_ensemble=4).video(clip.unbind(1)))
    with torch.no_grad():
        want = sum(invert_transform(model.net(apply_transform(clip, f, k)), f, k) for f, k in TRANSFORMS[4]) / 4
    torch.testing.assert_close(torch.stack(ens, 1), want, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# tiling
# ---------------------------------------------------------------------------------------------------------------------


def test_tiled_equals_untiled_for_a_local_net_and_auto_tiles_when_memory_is_short():
    model = _tiny('AtrousNet')  # local: 2 blocks of dilated 3x3 at half resolution
    _perturb(model.net)
    x = torch.rand(1, 3, 150, 170)
    whole = model.restorer().image(x)
    tiled = model.restorer(tile=96, tile_overlap=64).image(x)
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)  # float32 summation order
    auto = model.restorer(tile='auto', max_memory=1)  # nothing fits: even the smallest tile is refused
    with pytest.raises(MemoryError, match='not enough memory'):
        auto.image(x)
    auto = model.restorer(tile='auto', tile_overlap=64)
    probe = auto._probe()
    assert probe[128] > probe[64] > 0
    per_pixel = (probe[128] - probe[64]) / (128**2 - 64**2)
    auto.max_memory = int(probe[64] + per_pixel * (100 * 100 - 64 * 64))  # room for 100x100 pixels, not 150x170
    side = auto.plan(150, 170)
    assert 96 <= side <= 100
    torch.testing.assert_close(auto.image(x), whole, atol=1e-4, rtol=0)
    assert model.restorer(tile='auto').plan(150, 170) is None  # plenty of memory: no tiling


def test_a_wide_net_differs_only_near_tile_borders():
    torch.manual_seed(0)
    model = _tiny('SVDN')
    _perturb(model.net)  # the untrained SVDN is close to the identity, which any tiling reproduces
    x = torch.rand(1, 3, 96, 256)
    whole = model.restorer().image(x)
    tiled = model.restorer(tile=128, tile_overlap=32).image(x)  # tiles at 0, 96, 192: overlaps [96, 128), [192, 224)
    diff = (tiled - whole).abs().amax(dim=(0, 1, 2))  # per column
    assert diff.max() > 1e-4  # SVDN sees further than the 8 blanked pixels: the seams show a little
    assert diff.max() < 1e-2
    assert diff[:80].max() < 1e-5 and diff[144:176].max() < 1e-5  # far from the overlaps: the untiled result


# ---------------------------------------------------------------------------------------------------------------------
# errors name the file, key or value
# ---------------------------------------------------------------------------------------------------------------------


def _error(capsys, *argv):
    assert _run(*argv) == 2
    return capsys.readouterr().err


def test_bad_files_are_named(tmp_path, capsys):
    ckpt, _ = _save(tmp_path, 'SVDN')
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), _image())
    data = good.read_bytes()
    (tmp_path / 'cut.png').write_bytes(data[:len(data) // 3])
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'clip.gif').write_bytes(b'GIF89a')
    base = ('--model', _option(tmp_path, 'SVDN', ckpt))
    assert 'cut.png' in _error(capsys, *base, '--input', tmp_path / 'cut.png', '--output', tmp_path / 'o1.png')
    assert 'empty file' in _error(capsys, *base, '--input', tmp_path / 'empty.png', '--output', tmp_path / 'o2.png')
    assert 'unsupported file type .gif' in _error(capsys, *base, '--input', tmp_path / 'clip.gif', '--output',
                                                  tmp_path / 'o.gif')
    assert 'does not exist' in _error(capsys, *base, '--input', tmp_path / 'nope.png', '--output', tmp_path / 'o.png')
    (tmp_path / 'bad.mp4').write_bytes(b'\0' * 100)
    assert 'bad.mp4' in _error(capsys, *base, '--input', tmp_path / 'bad.mp4', '--output', tmp_path / 'o.mp4')
    (tmp_path / 'emptydir').mkdir()
    assert 'no images' in _error(capsys, *base, '--input', tmp_path / 'emptydir', '--output', tmp_path / 'od')
    assert 'the input is an image' in _error(capsys, *base, '--input', good, '--output', tmp_path / 'o.mp4')


@pytest.mark.parametrize('params', [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 1]],
                         ids=['baseline', 'progressive', 'restart-markers'])
def test_a_jpeg_cut_anywhere_is_incomplete(params):
    data = cv2.imencode('.jpg', cv2.GaussianBlur(_image(48, 64), (0, 0), 2), params)[1].tobytes()
    assert jpeg_is_complete(data) and jpeg_is_complete(data + b"trailer")
    assert not [cut for cut in range(2, len(data)) if jpeg_is_complete(data[:cut])]


def test_outputs_are_never_overwritten_without_asking(tmp_path, capsys):
    ckpt, _ = _save(tmp_path, 'AtrousNet')
    model = _option(tmp_path, 'AtrousNet', ckpt)
    src = tmp_path / 'a.png'
    cv2.imwrite(str(src), _image())
    assert 'overwrite the input' in _error(capsys, '--model', model, '--input', src,
                                           '--output', src)
    before = src.read_bytes()
    os.link(src, tmp_path / 'hard.png')  # another name of the same file: refused even with --overwrite
    os.symlink(src, tmp_path / 'soft.png')
    for other in ('hard.png', 'soft.png'):
        assert 'overwrite the input' in _error(capsys, '--model', model, '--input', src, '--output',
                                               tmp_path / other, '--overwrite')
    assert src.read_bytes() == before
    (tmp_path / 'b.png').write_bytes(b'mine')
    err = _error(capsys, '--model', model, '--input', src, '--output', tmp_path / 'b.png')
    assert 'exist already' in err and 'b.png' in err and '--overwrite' in err
    assert (tmp_path / 'b.png').read_bytes() == b'mine'
    assert _run('--model', model, '--input', src, '--output', tmp_path / 'b.png',
                '--overwrite') == 0
    cv2.imwrite(str(tmp_path / 'deep.png'), _image(dtype=np.uint16))
    assert 'cannot hold' in _error(capsys, '--model', model, '--input', tmp_path / 'deep.png',
                                   '--output', tmp_path / 'deep.jpg')


def test_a_checkpoint_for_another_net_names_the_keys(tmp_path, capsys):
    ckpt, _ = _save(tmp_path, 'AtrousNet')
    cv2.imwrite(str(tmp_path / 'a.png'), _image())
    err = _error(capsys, '--model', _option(tmp_path, 'SVDN', ckpt), '--input', tmp_path / 'a.png', '--output',
                 tmp_path / 'b.png')
    assert 'does not fit SVDN' in err and 'missing keys' in err and 'unexpected keys' in err
    wide, _ = _save(tmp_path, 'SVDN', name='wide.pth', num_feat=16)
    err = _error(capsys, '--model', _option(tmp_path, 'SVDN', wide), '--input', tmp_path / 'a.png', '--output',
                 tmp_path / 'b.png')
    assert 'shape mismatches' in err


class _Payload:
    def __reduce__(self):
        return (os.system, ('echo owned > /dev/null', ))


def test_a_checkpoint_with_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / 'evil.pth'
    torch.save({'params': {}, 'extra': _Payload()}, path)
    cv2.imwrite(str(tmp_path / 'a.png'), _image())
    err = _error(capsys, '--model', 'SVDN', '--weights', path, '--input', tmp_path / 'a.png', '--output',
                 tmp_path / 'b.png')
    assert 'refusing to load' in err and 'evil.pth' in err


def test_bad_options_are_named(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), _image())
    io = ('--input', tmp_path / 'a.png', '--output', tmp_path / 'b.png')
    assert "'NoSuchNet' is neither" in _error(capsys, '--model', 'NoSuchNet', '--weights', 'x.pth', *io)
    assert 'checkpoint not found' in _error(capsys, '--model', 'SVDN', '--weights', tmp_path / 'x.pth', *io)
    assert '--weights' in _error(capsys, '--model', 'SVDN', *io)
    ckpt, _ = _save(tmp_path, 'SVDN')
    err = _error(capsys, '--model', _option(tmp_path, 'SVDN', ckpt), '--fp16', '--device', 'cpu', *io)
    assert '--fp16 runs on CUDA only' in err
    bad = tmp_path / 'test_bad.yml'
    bad.write_text(yaml.safe_dump({'network_g': {'type': 'SVDN', 'no_such_arg': 1}}))
    assert 'network_g' in _error(capsys, '--model', bad, '--weights', ckpt, *io)
    with pytest.raises(SystemExit):
        main(['--model', _option(tmp_path, 'SVDN', ckpt), '--tile', 'big', *map(str, io)])


def test_check_tiling_reports_the_difference_near_and_away_from_the_seams(tmp_path, capsys):
    ckpt, _ = _save(tmp_path, 'AtrousNet', perturb=True)
    cv2.imwrite(str(tmp_path / 'a.png'), _image(100, 260))
    result = load_script('check_tiling').main(['--model', _option(tmp_path, 'AtrousNet', ckpt), '--input',
                                               str(tmp_path / 'a.png'), '--tile', '128', '--tile-overlap', '64'])
    assert result['tiles'] == 4  # one row, 64 apart: 0, 64, 128 and 192 (reaching 260)
    assert result['away'] <= result['overall'] < 1e-3 and result['psnr'] > 60
    assert 'in the blended overlaps' in capsys.readouterr().out
