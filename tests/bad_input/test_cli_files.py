"""deblurzoo-infer and the files it reads and writes: any file name for images and videos, truncated and short videos,
batches that keep going past bad inputs, ``--skip-existing`` after an interrupted run, nets without weights.

The net is the tiny ``AtrousNet``, which starts as the identity (its output conv is zero): images come back exactly.
Property-based cases (Hypothesis) keep few examples each, so the module stays fast.
"""
import os
import re
import struct
import zlib
from os import path as osp

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deblurzoo  # noqa: F401  (registers the archs)
from basicsr.archs import build_network
from deblurzoo.data import safe_io
from deblurzoo.inference.cli import main
from test_registry import TINY

FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VIDEO_FEW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# a file name: any bytes but '/' and NUL (spaces, newlines, escape characters, a leading dash, not UTF-8), not hidden
NAMES = st.binary(min_size=1, max_size=10).map(lambda b: b.replace(b'/', b'_').replace(b'\0', b'_')).filter(
    lambda b: not b.startswith(b'.'))


@pytest.fixture(scope='module')
def option(tmp_path_factory):
    """An option file of the identity AtrousNet with its checkpoint."""
    root = tmp_path_factory.mktemp('model')
    torch.manual_seed(0)
    net = build_network({'type': 'AtrousNet', **TINY['AtrousNet']})
    torch.save({'params': net.state_dict()}, root / 'atrous.pth')
    opt = {'network_g': {'type': 'AtrousNet', **TINY['AtrousNet']},
           'path': {'pretrain_network_g': str(root / 'atrous.pth'), 'param_key_g': 'params'}}
    (root / 'atrous.yml').write_text(yaml.safe_dump(opt))
    return str(root / 'atrous.yml')


def _run(option, src, dst, *extra):
    """The CLI on the CPU, untiled; paths may be bytes (given as str with surrogate escapes, as Python passes argv)."""
    return main(['--model', option, f'--input={os.fsdecode(src)}', f'--output={os.fsdecode(dst)}', '--device', 'cpu',
                 '--tile', '0', '--quiet', *extra])


def _image(seed=0, h=20, w=28):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _read(path):
    return safe_io.read_image(path, -1)


def _write_video(path, frames=3, size=(24, 32), fourcc='mp4v'):
    writer = safe_io.AtomicVideoWriter(path, 5.0, fourcc)
    for i in range(frames):
        writer.write(np.full(size + (3, ), 30 + 40 * i, np.uint8))
    return writer.close()


def _errors(err):
    return [line for line in err.splitlines() if line.startswith('deblurzoo-infer: error: ')]


def _printable(text):
    text.encode('utf-8')  # no surrogates
    return text.isprintable()


def _no_temporaries(folder):
    left = [n for n in os.listdir(folder) if n.startswith(b'.' if isinstance(folder, bytes) else '.')]
    assert not left, f'temporary files left in {folder}: {left}'


# ---------------------------------------------------------------- any file name, images and videos


@FEW
@given(folder=NAMES, name=NAMES, out=NAMES)
def test_any_image_name_is_read_written_and_shown_escaped(option, tmp_path_factory, capsys, folder, name, out):
    root = os.fsencode(tmp_path_factory.mktemp('names'))
    os.makedirs(osp.join(root, folder))
    src, dst = osp.join(root, folder, name + b'.png'), osp.join(root, folder, out + b'.out.png')
    safe_io.write_image(src, _image())
    assert _run(option, src, dst) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(_read(dst), _image())

    # a damaged input with that name: one error line, printable, naming it escaped; nothing written
    safe_io.write_bytes_atomic(src, b'\x89PNG\r\n\x1a\n' + bytes(40))
    os.remove(dst)
    capsys.readouterr()
    assert _run(option, src, dst) == 2
    (line, ) = _errors(capsys.readouterr().err)
    assert _printable(line) and safe_io.shown(src) in line
    assert not osp.lexists(dst)
    _no_temporaries(osp.join(root, folder))


@VIDEO_FEW
@given(name=NAMES, out=NAMES, container=st.sampled_from(['.mp4', '.avi', '.mkv']))
def test_any_video_name_is_read_written_and_shown_escaped(option, tmp_path_factory, capsys, name, out, container):
    root = os.fsencode(tmp_path_factory.mktemp('videos'))
    src, dst = osp.join(root, name + container.encode()), osp.join(root, out + b'.out' + container.encode())
    assert _write_video(src, fourcc='MJPG' if container == '.avi' else 'mp4v') == 3
    assert _run(option, src, dst) == 0, capsys.readouterr().err
    frames = safe_io.read_video(dst)
    assert len(frames) == 3 and frames[0].shape == (24, 32, 3)
    assert sorted(os.listdir(root)) == sorted([osp.basename(src), osp.basename(dst)])  # no temporary file or link

    # an unreadable video with that name: named escaped, nothing written
    safe_io.write_bytes_atomic(src, bytes(100))
    os.remove(dst)
    capsys.readouterr()
    assert _run(option, src, dst) == 2
    (line, ) = _errors(capsys.readouterr().err)
    assert _printable(line) and f'cannot open video {safe_io.shown(src)}' in line
    assert sorted(os.listdir(root)) == [osp.basename(src)]


def test_opencv_is_given_only_an_ascii_name(tmp_path, monkeypatch):
    import cv2
    opened = []
    real_capture, real_writer = cv2.VideoCapture, cv2.VideoWriter

    def capture(name, *args):
        opened.append(name)
        return real_capture(name, *args)

    def writer(name, *args):
        opened.append(name)
        return real_writer(name, *args)

    monkeypatch.setattr(cv2, 'VideoCapture', capture)
    monkeypatch.setattr(cv2, 'VideoWriter', writer)
    path = osp.join(os.fsencode(tmp_path), b'\xff\xfe clip\n.mp4')
    _write_video(path)
    assert len(safe_io.read_video(path)) == 3
    assert len(opened) == 3  # written, reopened to count its frames, read
    for name in opened:
        assert name.isascii() and name.isprintable() and osp.basename(name) == 'video.mp4', name
        assert not osp.lexists(name)  # the link is gone
    assert os.listdir(tmp_path) == [os.fsdecode(b'\xff\xfe clip\n.mp4')]


# ---------------------------------------------------------------- truncated and short videos


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """{container: bytes} of 13-frame videos with noisy frames (so that a cut loses whole frames)."""
    root = tmp_path_factory.mktemp('whole')
    rng = np.random.default_rng(0)
    out = {}
    for ext, fourcc in (('.mp4', 'mp4v'), ('.avi', 'MJPG')):
        writer = safe_io.AtomicVideoWriter(str(root / f'v{ext}'), 5.0, fourcc)
        for _ in range(13):
            writer.write(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
        writer.close()
        out[ext] = (root / f'v{ext}').read_bytes()
    return out


def test_a_stream_shorter_than_its_header_is_an_error_naming_the_count(option, videos, tmp_path, capsys):
    data = videos['.avi']
    (tmp_path / 'cut.avi').write_bytes(data[:int(len(data) * 0.9)])  # the header (13 frames) stays, frames go
    cap, _, count = safe_io.open_video(str(tmp_path / 'cut.avi'))
    cap.release()
    assert count == 13
    assert _run(option, tmp_path / 'cut.avi', tmp_path / 'out.avi') == 2
    (line, ) = _errors(capsys.readouterr().err)
    assert re.search(rf'{tmp_path}/cut.avi: its header declares 13 frames, but the stream ends after (\d+)', line)
    assert int(re.search(r'ends after (\d+)', line).group(1)) < 13
    assert sorted(os.listdir(tmp_path)) == ['cut.avi']  # no partial output, no temporary file


@VIDEO_FEW
@given(container=st.sampled_from(['.mp4', '.avi']), fraction=st.floats(0.05, 1, exclude_max=True))
def test_a_truncated_video_is_refused_with_its_name_or_restored_whole(option, videos, tmp_path_factory, capsys,
                                                                     container, fraction):
    tmp = tmp_path_factory.mktemp('cut')
    data = videos[container]
    src, dst = tmp / f'cut{container}', tmp / f'out{container}'
    src.write_bytes(data[:int(len(data) * fraction)])
    capsys.readouterr()
    status = _run(option, src, dst)
    err = capsys.readouterr().err
    if status == 0:  # only a cut that leaves every declared frame readable may pass, and then all come out
        assert len(safe_io.read_video(str(dst))) == 13
    else:
        (line, ) = _errors(err)
        assert status == 2 and str(src) in line
        assert not dst.exists()
    _no_temporaries(str(tmp))


def test_a_video_the_encoder_would_crop_is_refused_not_written_smaller(option, tmp_path, capsys):
    """OpenCV's encoders silently drop an odd row and column; the written file is reopened and its size checked."""
    _write_video(str(tmp_path / 'clip.avi'), size=(24, 32), fourcc='MJPG')
    assert _run(option, tmp_path / 'clip.avi', tmp_path / 'wide.avi', '--side-by-side') == 0  # 64 wide: even
    assert safe_io.read_video(str(tmp_path / 'wide.avi'))[0].shape == (24, 64, 3)
    frames = [np.full((25, 33, 3), 40 * i, np.uint8) for i in range(3)]
    writer = safe_io.AtomicVideoWriter(str(tmp_path / 'direct.mp4'), 5.0, 'mp4v')
    for frame in frames:
        writer.write(frame)
    with pytest.raises(OSError, match=r'direct\.mp4: the file written holds 3 of the 3 frames at 32x24 instead of '
                       r'33x25 \(the mp4v encoder here keeps only even widths and heights'):
        writer.close()
    assert sorted(os.listdir(tmp_path)) == ['clip.avi', 'wide.avi']


# ---------------------------------------------------------------- batches keep going, --skip-existing


def _batch(root):
    """A folder of 4 good images and 2 bad ones (one cut, one not an image)."""
    src = root / 'in'
    (src / 'sub').mkdir(parents=True)
    for i, name in enumerate(('a.png', 'c.png', 'sub/d.png', 'sub/f.png')):
        safe_io.write_image(str(src / name), _image(i))
    good = (src / 'a.png').read_bytes()
    (src / 'b.png').write_bytes(good[:len(good) // 2])
    (src / 'sub' / 'e.jpg').write_bytes(b'not an image')
    return src


def test_a_batch_restores_every_good_input_and_lists_the_bad_ones(option, tmp_path, capsys):
    src, out = _batch(tmp_path), tmp_path / 'out'
    assert _run(option, src, out) == 2
    err = capsys.readouterr().err
    errors = _errors(err)
    assert len(errors) == 2
    assert f'{src}/b.png: truncated PNG' in errors[0] and f'{src}/sub/e.jpg' in errors[1]
    assert '2 input(s) failed (listed above); 4 output(s) written' in err
    written = sorted(osp.relpath(osp.join(d, n), out) for d, _, names in os.walk(out) for n in names)
    assert written == ['a.png', 'c.png', 'sub/d.png', 'sub/f.png']  # nothing for the bad ones, no temporary files
    for i, name in enumerate(written):
        np.testing.assert_array_equal(_read(str(out / name)), _image(i))

    # a rerun without --skip-existing or --overwrite refuses to touch the outputs
    assert _run(option, src, out) == 2
    assert 'pass --overwrite to replace them, or --skip-existing' in capsys.readouterr().err

    # the bad inputs fixed, --skip-existing makes only what is missing: the outputs there are not rewritten
    safe_io.write_image(str(src / 'b.png'), _image(7))
    os.remove(src / 'sub' / 'e.jpg')
    before = {name: os.stat(out / name) for name in written}
    assert _run(option, src, out, '--skip-existing') == 0, capsys.readouterr().err
    for name, old in before.items():
        now = os.stat(out / name)
        assert (now.st_ino, now.st_mtime_ns) == (old.st_ino, old.st_mtime_ns), f'{name} was rewritten'
    np.testing.assert_array_equal(_read(str(out / 'b.png')), _image(7))


def test_skip_existing_reports_an_incomplete_output_and_leaves_it(option, tmp_path, capsys):
    src, out = _batch(tmp_path), tmp_path / 'out'
    os.remove(src / 'b.png')
    os.remove(src / 'sub' / 'e.jpg')
    out.mkdir()
    whole = safe_io.encode_image('.png', _image(0)).tobytes()
    (out / 'a.png').write_bytes(whole[:len(whole) // 2])  # left by another tool, cut
    assert _run(option, src, out, '--skip-existing') == 2
    err = capsys.readouterr().err
    (line, ) = _errors(err)
    assert '--skip-existing: the existing output is not complete' in line and f'{out}/a.png: truncated PNG' in line
    assert (out / 'a.png').read_bytes() == whole[:len(whole) // 2]
    assert sorted(os.listdir(out)) == ['a.png', 'c.png', 'sub']
    # --overwrite replaces it; the two cannot be combined
    assert _run(option, src, out, '--overwrite') == 0
    np.testing.assert_array_equal(_read(str(out / 'a.png')), _image(0))
    with pytest.raises(SystemExit) as info:
        _run(option, src, out, '--overwrite', '--skip-existing')
    assert info.value.code == 2 and 'not allowed with argument' in capsys.readouterr().err


def test_skip_existing_keeps_a_complete_video_and_remakes_a_short_one(option, videos, tmp_path, capsys):
    (tmp_path / 'in.avi').write_bytes(videos['.avi'])
    dst = tmp_path / 'out.avi'
    assert _run(option, tmp_path / 'in.avi', dst) == 0
    st = os.stat(dst)
    assert _run(option, tmp_path / 'in.avi', dst, '--skip-existing') == 0
    assert os.stat(dst).st_ino == st.st_ino
    data = dst.read_bytes()
    dst.write_bytes(data[:int(len(data) * 0.9)])
    assert _run(option, tmp_path / 'in.avi', dst, '--skip-existing') == 2
    assert 'its header declares 13 frames, but the stream ends after' in capsys.readouterr().err


def test_skip_existing_in_a_sequence_restores_every_frame_but_writes_only_the_missing(option, tmp_path, capsys):
    """A recurrent net needs every frame for its state: the kept outputs are restored again, not rewritten, and the
    remade one equals what the uninterrupted run wrote."""
    torch.manual_seed(0)
    net = build_network({'type': 'SARNRecurrent', **TINY['SARNRecurrent']})
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # not the identity: each frame depends on the ones before
    torch.save({'params': net.state_dict()}, tmp_path / 'rec.pth')
    opt = {'network_g': {'type': 'SARNRecurrent', **TINY['SARNRecurrent']},
           'path': {'pretrain_network_g': str(tmp_path / 'rec.pth'), 'param_key_g': 'params'}}
    (tmp_path / 'rec.yml').write_text(yaml.safe_dump(opt))
    (tmp_path / 'seq').mkdir()
    for i in range(4):
        safe_io.write_image(str(tmp_path / 'seq' / f'{i}.png'), _image(i, 24, 32))
    out = tmp_path / 'out'
    assert _run(str(tmp_path / 'rec.yml'), tmp_path / 'seq', out) == 0, capsys.readouterr().err
    whole = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert sorted(whole) == ['0.png', '1.png', '2.png', '3.png']
    os.remove(out / '2.png')
    kept = {name: os.stat(out / name).st_ino for name in ('0.png', '1.png', '3.png')}
    assert _run(str(tmp_path / 'rec.yml'), tmp_path / 'seq', out, '--skip-existing') == 0
    assert {name: os.stat(out / name).st_ino for name in kept} == kept
    assert (out / '2.png').read_bytes() == whole['2.png']


def _header_only(kind, width, height):
    """A PNG (IHDR and IEND chunks, valid CRCs) or a JPEG (a baseline frame header) declaring ``width`` x ``height``,
    without pixel data."""
    if kind == 'png':
        def chunk(tag, payload):
            return struct.pack('>I', len(payload)) + tag + payload + struct.pack('>I', zlib.crc32(tag + payload))
        ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
        return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IEND', b'')
    sof = struct.pack('>BHHB', 8, height, width, 3) + b'\x01\x11\x00\x02\x11\x00\x03\x11\x00'
    return b'\xff\xd8\xff\xc0' + struct.pack('>H', len(sof) + 2) + sof + b'\xff\xd9'


@FEW
@given(kind=st.sampled_from(['png', 'jpeg']), width=st.integers(0, 65535), height=st.integers(0, 65535))
def test_absurd_image_headers_through_the_cli_name_the_file(option, tmp_path_factory, capsys, kind, width, height):
    tmp = tmp_path_factory.mktemp('header')
    src = tmp / f'big.{"png" if kind == "png" else "jpg"}'
    src.write_bytes(_header_only(kind, width, height))
    capsys.readouterr()
    assert _run(option, src, tmp / 'out.png') == 2
    (line, ) = _errors(capsys.readouterr().err)
    assert f'error: {src}: ' in line
    assert os.listdir(tmp) == [src.name]


# ---------------------------------------------------------------- a net without weights


def test_a_net_without_weights_is_refused_unless_allowed(option, tmp_path, capsys):
    safe_io.write_image(str(tmp_path / 'a.png'), _image())
    bare = ['--model', 'AtrousNet']
    argv = ['--input', str(tmp_path / 'a.png'), '--output', str(tmp_path / 'o.png'), '--device', 'cpu', '--quiet',
            '--tile', '0']
    assert main(bare + argv) == 2
    assert 'a checkpoint for AtrousNet is needed' in capsys.readouterr().err
    assert not (tmp_path / 'o.png').exists()
    opt = yaml.safe_load(open(option))
    del opt['path']
    (tmp_path / 'untrained.yml').write_text(yaml.safe_dump(opt))
    assert main(['--model', str(tmp_path / 'untrained.yml')] + argv) == 2
    assert 'path.pretrain_network_g is empty; pass --weights' in capsys.readouterr().err
    assert not (tmp_path / 'o.png').exists()

    assert main(['--model', str(tmp_path / 'untrained.yml'), '--allow-untrained'] + argv) == 0
    np.testing.assert_array_equal(_read(str(tmp_path / 'o.png')), _image())  # the untrained AtrousNet: the identity


def test_a_non_utf8_option_file_is_named(tmp_path, capsys):
    (tmp_path / 'opt.yml').write_bytes(b'network_g:\n  type: Atrous\xe9Net\n')
    safe_io.write_image(str(tmp_path / 'a.png'), _image())
    assert _run(str(tmp_path / 'opt.yml'), tmp_path / 'a.png', tmp_path / 'o.png') == 2
    assert f"option file '{tmp_path}/opt.yml': not UTF-8 text (byte 0xe9 on line 2)" in capsys.readouterr().err


def test_every_error_line_is_printable_even_for_a_name_no_message_escaped(option, tmp_path, capsys):
    safe_io.write_image(str(tmp_path / 'a.png'), _image())
    weights = osp.join(os.fsencode(tmp_path), b'\xffw\x1b[31m\nx.pth')  # not UTF-8, an escape sequence, a newline
    assert _run(option, tmp_path / 'a.png', tmp_path / 'o.png', f'--weights={os.fsdecode(weights)}') == 2
    (line, ) = _errors(capsys.readouterr().err)
    assert _printable(line) and line.endswith(f'checkpoint not found: {tmp_path}/\\xffw\\x1b[31m x.pth')
