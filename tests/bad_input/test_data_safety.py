"""Data safety of the datasets, flows and LMDB packing: any file name works, no path reaches OpenCV, writes are atomic,
and corrupt containers (truncated PNG/JPEG/LMDB, absurd image headers, damaged LMDBs) fail with the file's name.

Property-based cases use Hypothesis with few examples each, so that the suite stays fast.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from os import path as osp

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deblurzoo  # noqa: F401  (registers the datasets)
from data_factory import REPO_ROOT, load_script, make_gopro_tree
from deblurzoo.data import safe_io
from deblurzoo.data.data_util import decode_image
from deblurzoo.data.flow_util import read_flow, write_flow
from deblurzoo.data.gopro_dataset import GoProDataset
from deblurzoo.data.reds_dataset import REDSDeblurDataset

FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SIZE = (12, 16)


def _image(seed=0, size=SIZE):
    return np.random.default_rng(seed).integers(0, 256, size + (3, ), dtype=np.uint8)


PNG = safe_io.encode_image('.png', _image()).tobytes()
JPEG = safe_io.encode_image('.jpg', _image(), [cv2.IMWRITE_JPEG_QUALITY, 90]).tobytes()


def _printable(message):
    """A message that can be printed and encoded as UTF-8 (no surrogates, no control characters)."""
    message.encode('utf-8')
    return message.isprintable()


# ---------------------------------------------------------------- no path reaches OpenCV

# path-based readers and writers: a file name OpenCV or numpy opens itself (OpenCV crashes on non-UTF-8 names,
# and nothing checks or atomically replaces what it writes)
PATH_IO = re.compile(r'cv2\.(imreadmulti|readOpticalFlow|writeOpticalFlow|VideoCapture|VideoWriter)\('
                     r'|\b(imread|imwrite|flowread|flowwrite)\('  # OpenCV's and basicsr.utils'
                     r'|np\.(load|save)\((?!\s*(io\.BytesIO|buf\b))|make_lmdb_from_imgs\(|FileClient\(')
# video containers are the one thing OpenCV must open by path: only safe_io does, through a temporary ASCII-named link
VIDEO_OPENER = ('deblurzoo/data/safe_io.py', re.compile(r'cv2\.(VideoCapture|VideoWriter)\('))

# writes that are not atomic (a partial file on a full disk or a kill), and removals/renames of files; each one left in
# the package and scripts is listed in WRITE_ALLOWED with the reason it is safe
WRITES = re.compile(r'open\([^)]*[\'"][wax]b?\+?[\'"]|json\.dump\(|torch\.save\(|np\.save\(|\.write_(text|bytes)\('
                    r'|shutil\.(move|rmtree)\(|os\.(remove|unlink|rename|replace|rmdir)\('
                    r'|yaml\.(safe_)?dump\([^)]*,\s*f\b')
WRITE_ALLOWED = {
    # file: (what an allowed line holds, ...), with the reason it is safe
    'deblurzoo/data/safe_io.py': ('with os.fdopen(fd,', 'os.replace(tmp, path)', 'os.unlink(tmp)', 'os.unlink(link)',
                                  'os.rmdir(folder)', 'os.replace(self.tmp, self.path)',
                                  'os.unlink(self.tmp)'),  # the atomic writers, their temporary files and links
    'deblurzoo/checkpoint.py': ('torch.save(obj, path)', "with open(tmp, 'wb')", 'torch.save(obj, f)',
                                'os.replace(tmp, path)', 'os.remove(tmp)'),  # atomic_save: <path>.tmp, fsync, rename
    'deblurzoo/data/flow_util.py': ('np.save(buf,', ),  # into an in-memory buffer
    'deblurzoo/training/extensions.py': ("with open(probe, 'w')", 'os.remove(probe)'),  # its own probe file
    'scripts/benchmark.py': ("with open(spec_path, 'w')", 'json.dump(dict(spec, result=result_path), f)',
                             "with open(tmp, 'w')", 'json.dump(res, f)',
                             "os.replace(tmp, spec['result'])"),  # its own temporary folder, then os.replace
    'scripts/gpu_check.py': ("os.rename(target, osp.join(scratch, 'old'))", 'os.rename(osp.join(scratch, name), target)',
                             'shutil.rmtree(scratch,', 'torch.save({', "with open(osp.join(root, 'opt.yml'), 'w')",
                             'yaml.safe_dump(opt, f)'),  # --vendor's swap of its own copy (VENDOR_MARK), scratch
    'scripts/make_lmdb.py': ('os.rename(target, osp.join(old, name))', 'os.rename(tmp, target)',
                             'os.rename(osp.join(old, name), target)', 'shutil.rmtree(tmp,',
                             'shutil.rmtree(old,'),  # the swap of a complete lmdb, its own temporary folders
    'scripts/make_blur_dataset.py': ('os.remove(manifest_path)', ),  # its own manifest: an interrupted build is
    # not complete
    'scripts/export_onnx.py': ('os.replace(tmp, args.output)', 'os.remove(tmp)'),  # its temporary file beside --output
}


def _offenders(root, pattern, allowed=None):
    """'file:line: text' of every line of deblurzoo/ and scripts/ under ``root`` matching ``pattern`` (docstring lines
    that name a call are code too here: only ``#`` comments are left out), except lines holding one of the texts
    ``allowed`` lists for their file."""
    allowed = allowed or {}
    found = []
    for folder in ('deblurzoo', 'scripts'):
        for dirpath, _, names in os.walk(osp.join(root, folder)):
            for name in sorted(names):
                path = osp.join(dirpath, name)
                rel = osp.relpath(path, root)
                if not name.endswith('.py'):
                    continue
                with open(path, encoding='utf-8') as f:
                    for number, line in enumerate(f, 1):
                        code = line.split('#')[0]
                        if not pattern.search(code) or any(text in code for text in allowed.get(rel, ())):
                            continue
                        if not (rel == VIDEO_OPENER[0] and VIDEO_OPENER[1].search(code)):
                            found.append(f'{rel}:{number}: {line.strip()}')
    return found


def test_no_image_or_flow_path_reaches_opencv(tmp_path):
    offenders = _offenders(REPO_ROOT, PATH_IO)
    assert not offenders, 'path-based image/flow/video I/O:\n' + '\n'.join(offenders)
    # the check itself finds what it is for
    for call in ('img = cv2.imread(path)', 'np.load(path)', 'cv2.VideoCapture(path)', 'cv2.VideoWriter(p, f, 5, s)',
                 'imwrite(result, save_path)', 'basicsr.utils.imwrite(img, p)'):
        assert PATH_IO.search(call), call
    assert not PATH_IO.search('np.load(io.BytesIO(content), allow_pickle=False)')
    assert not PATH_IO.search("cv2.VideoWriter_fourcc(*'mp4v')")
    (tmp_path / 'scripts').mkdir()
    (tmp_path / 'deblurzoo' / 'data').mkdir(parents=True)
    (tmp_path / 'scripts' / 'x.py').write_text('import cv2\ncap = cv2.VideoCapture(name)  # a video\n')
    (tmp_path / 'deblurzoo' / 'data' / 'safe_io.py').write_text('a = cv2.VideoCapture(link)\nb = cv2.imread(p)\n')
    assert _offenders(tmp_path, PATH_IO) == ['deblurzoo/data/safe_io.py:2: b = cv2.imread(p)',
                                             'scripts/x.py:2: cap = cv2.VideoCapture(name)  # a video']


def test_every_write_of_the_package_and_scripts_is_atomic(tmp_path):
    offenders = _offenders(REPO_ROOT, WRITES, WRITE_ALLOWED)
    assert not offenders, ('writes that are not atomic (use safe_io.write_bytes_atomic/write_text_atomic/write_image, '
                           'or list the file in WRITE_ALLOWED with the reason):\n' + '\n'.join(offenders))
    for call in ("with open(args.json, 'w') as f:", 'json.dump(rows, f)', 'torch.save(state, path)',
                 "open(p, 'wb')", 'shutil.rmtree(out)', 'os.remove(path)', 'yaml.safe_dump(opt, f)'):
        assert WRITES.search(call), call
    assert not WRITES.search("open(path, 'rb')") and not WRITES.search('json.dumps(rows)')
    (tmp_path / 'scripts').mkdir()
    (tmp_path / 'scripts' / 'report.py').write_text("with open(out, 'w') as f:\n    f.write(table)\n")
    (tmp_path / 'scripts' / 'make_lmdb.py').write_text("os.rename(tmp, target)\nshutil.rmtree(args.out)\n")
    assert _offenders(tmp_path, WRITES, WRITE_ALLOWED) == ['scripts/make_lmdb.py:2: shutil.rmtree(args.out)',
                                                           "scripts/report.py:1: with open(out, 'w') as f:"]


# ---------------------------------------------------------------- any file name

# a file or folder name: any bytes but '/' and NUL, not '.', '..' or hidden
NAMES = st.binary(
    min_size=1,
    max_size=12).map(lambda b: b.replace(b'/', b'_').replace(b'\0', b'_')).filter(lambda b: not b.startswith(b'.'))


def _write_pair_tree(root, seq, frame):
    """A GoPro split 'test' of one sequence ``seq`` (bytes) with one frame ``frame`` (bytes, '.png' added)."""
    for folder, seed in ((b'blur', 1), (b'sharp', 2)):
        folder_path = osp.join(os.fsencode(root), b'test', seq, folder)
        os.makedirs(folder_path, exist_ok=True)
        safe_io.write_image(osp.join(folder_path, frame + b'.png'), _image(seed))


@FEW
@given(seq=NAMES, frame=NAMES)
def test_any_file_name_is_scanned_read_and_shown_escaped(tmp_path_factory, seq, frame):
    root = str(tmp_path_factory.mktemp('names'))
    _write_pair_tree(root, seq, frame)
    dataset = GoProDataset({'name': 'n', 'dataroot': root, 'split': 'test'})
    assert dataset.samples[0]['key'] == f'{os.fsdecode(seq)}/{os.fsdecode(frame)}'
    sample = dataset[0]
    expected = _image(1)[..., ::-1].astype(np.float32) / 255  # RGB
    np.testing.assert_array_equal(sample['lq'].permute(1, 2, 0).numpy(), expected)

    os.remove(osp.join(os.fsencode(root), b'test', seq, b'sharp', frame + b'.png'))
    with pytest.raises(ValueError) as info:
        GoProDataset({'name': 'n', 'dataroot': root, 'split': 'test'})
    message = str(info.value)
    assert _printable(message) and safe_io.shown(seq) in message and safe_io.shown(frame) in message

    # the same names as a REDS clip and frame (another layout, the same scan and read components)
    for folder, seed in ((b'train_blur', 1), (b'train_sharp', 2)):
        os.makedirs(osp.join(os.fsencode(root), folder, seq))
        safe_io.write_image(osp.join(os.fsencode(root), folder, seq, frame + b'.png'), _image(seed))
    reds = REDSDeblurDataset({'dataroot_lq': osp.join(root, 'train_blur'), 'dataroot_gt': osp.join(root, 'train_sharp'),
                              'num_frame': 1})
    np.testing.assert_array_equal(reds[0]['lq'].permute(1, 2, 0).numpy(), expected)
    assert reds[0]['key'] == f'{os.fsdecode(seq)}/{os.fsdecode(frame)}'


def test_shown_escapes_only_what_cannot_be_printed():
    assert safe_io.shown('GOPR0372_07_00/000047.png') == 'GOPR0372_07_00/000047.png'
    assert safe_io.shown('été/ü.png') == 'été/ü.png'
    assert safe_io.shown(os.fsdecode(b'a\xffb')) == 'a\\xffb'
    assert safe_io.shown(b'x\x1b[31m\ny') == 'x\\x1b[31m\\ny'


NASTY = b'\xff\xfe cl\x1bip'  # not UTF-8, with a space and an escape character


def test_non_utf8_names_through_flows_lmdb_packing_and_check_dataset(tmp_path, capsys):
    root = str(tmp_path / 'G')
    _write_pair_tree(root, NASTY, NASTY)
    seq = osp.join(os.fsencode(root), b'test', NASTY)
    compute_flows = load_script('compute_flows')
    with pytest.warns(UserWarning, match='single frame'):
        stats = compute_flows.compute_root_flows(root, ['test'], progress=False)
    assert stats['written'] == 1
    assert read_flow(osp.join(seq, b'flow', NASTY + b'.png')).shape == SIZE + (4, )

    # BasicSR's meta_info.txt separates fields by spaces: a key with one is refused clearly, nothing written
    out = str(tmp_path / 'lmdb')
    with pytest.raises(ValueError, match='white space'):
        load_script('make_lmdb').main(['--root', root, '--split', 'test', '--out', out])
    assert not osp.exists(out)
    clean = b'\xff\xfeclip'
    os.rename(seq, osp.join(os.fsencode(root), b'test', clean))
    for folder in (b'blur', b'sharp', b'flow'):
        folder = osp.join(os.fsencode(root), b'test', clean, folder)
        os.rename(osp.join(folder, NASTY + b'.png'), osp.join(folder, clean + b'.png'))
    made = load_script('make_lmdb').main(['--root', root, '--split', 'test', '--out', out])['test']
    opt = {
        'name': 'l',
        'io_backend': {
            'type': 'lmdb'
        },
        'dataroot_lq': made['blur'],
        'dataroot_gt': made['sharp'],
        'use_flow': True,
        'dataroot_flow': made['flow']
    }
    lmdb_sample, disk_sample = GoProDataset(opt)[0], GoProDataset({'dataroot': root, 'use_flow': True})[0]
    assert lmdb_sample['key'] == disk_sample['key'] == os.fsdecode(clean + b'/' + clean)
    for key in ('lq', 'gt', 'flow'):
        assert (lmdb_sample[key] == disk_sample[key]).all()

    os.remove(osp.join(os.fsencode(root), b'test', clean, b'sharp', clean + b'.png'))
    capsys.readouterr()
    assert load_script('check_dataset').main(['--type', 'GoProDataset', '--dataroot', root, '--split', 'test']) == 1
    out = capsys.readouterr().out
    assert _printable(out.replace('\n', '')) and r'\xff\xfeclip' in out and 'unpaired frame' in out


# ---------------------------------------------------------------- truncated and damaged images


@FEW
@given(data=st.sampled_from([PNG, JPEG]), fraction=st.floats(0, 1, exclude_max=True))
def test_a_truncated_image_is_refused_with_its_name_or_read_whole(data, fraction):
    cut = data[:int(len(data) * fraction)]
    try:
        img = decode_image(cut, 'frames/00001.png')
    except ValueError as err:
        assert str(err).startswith('frames/00001.png: ')
    else:  # only a cut that leaves the image whole may decode (e.g. trailing bytes after the end marker)
        assert (img == decode_image(data, 'whole')).all()


@FEW
@given(
    data=st.sampled_from([PNG, JPEG]),
    damage=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4))
def test_damaged_image_bytes_fail_with_the_name_not_a_decoder_traceback(data, damage):
    content = bytearray(data)
    for where, garbage in damage:
        at = int(where * len(content))
        content[at:at + len(garbage)] = garbage
    try:
        decode_image(bytes(content), 'x/garbled.png')
    except ValueError as err:  # never cv2.error or anything that does not name the file
        assert str(err).startswith('x/garbled.png: ')


def _png_header(width, height):
    """A PNG of only a header declaring ``width`` x ``height`` and an end chunk (valid CRCs, no pixel data)."""

    def chunk(kind, payload):
        return struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', zlib.crc32(kind + payload))

    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) + chunk(
        b'IEND', b'')


def _jpeg_header(width, height):
    """A JPEG of only a baseline frame header declaring ``width`` x ``height`` (3 components) and its end marker."""
    sof = struct.pack('>BHHB', 8, height, width, 3) + b'\x01\x11\x00\x02\x11\x00\x03\x11\x00'
    return b'\xff\xd8\xff\xc0' + struct.pack('>H', len(sof) + 2) + sof + b'\xff\xd9'


@FEW
@given(make=st.sampled_from([_png_header, _jpeg_header]), width=st.integers(0, 65535), height=st.integers(0, 65535))
def test_header_sizes_are_checked_before_decoding(make, width, height):
    content = make(width, height)
    assert safe_io.image_header_size(content) == (height, width)
    with pytest.raises(ValueError) as info:  # no pixel data: refused either way, always naming the file
        decode_image(content, 'big.img')
    message = str(info.value)
    assert message.startswith('big.img: ')
    if width * height > safe_io.max_image_pixels():
        assert f'{width}x{height} pixels' in message and safe_io.MAX_PIXELS_ENV in message
    elif width * height == 0:
        assert 'empty image' in message


def test_pixel_limit_is_configurable(monkeypatch, tmp_path):
    root = make_gopro_tree(str(tmp_path / 'G'), split='test', seqs=('S', ), frames=1, size=(40, 48))
    dataset = GoProDataset({'dataroot': root})
    monkeypatch.setenv(safe_io.MAX_PIXELS_ENV, str(40 * 48 - 1))
    with pytest.raises(ValueError, match=f'{re.escape(dataset.samples[0]["lq_path"])}: .*48x40 pixels'):
        dataset[0]
    monkeypatch.setenv(safe_io.MAX_PIXELS_ENV, str(40 * 48))
    assert dataset[0]['lq'].shape == (3, 40, 48)
    monkeypatch.setenv(safe_io.MAX_PIXELS_ENV, 'lots')
    with pytest.raises(ValueError, match=f'{safe_io.MAX_PIXELS_ENV} must be a positive integer'):
        dataset[0]


# ---------------------------------------------------------------- LMDB: truncated and damaged


@pytest.fixture(scope='module')
def packed(tmp_path_factory):
    """A GoPro split packed into LMDBs: (root, {'blur', 'sharp'}: lmdb path, data.mdb bytes of the blurry one)."""
    tmp = tmp_path_factory.mktemp('packed')
    root = make_gopro_tree(str(tmp / 'G'), split='test', seqs=('S1', 'S2'), frames=3, size=(24, 32))
    made = load_script('make_lmdb').main(['--root', root, '--split', 'test', '--out', str(tmp / 'lmdb')])['test']
    with open(osp.join(made['blur'], 'data.mdb'), 'rb') as f:
        return root, made, f.read()


# reads every key of an lmdb in a child process (a fault there must not take the test run with it); prints OK, or the
# error's message after 'ERROR '
_CHILD = """
import sys, types, importlib
package = types.ModuleType('_deblurzoo_data')
package.__path__ = [sys.argv[1]]
sys.modules['_deblurzoo_data'] = package
safe_io = importlib.import_module('_deblurzoo_data.safe_io')
try:
    safe_io.check_lmdb(sys.argv[2], 'dataroot_lq')
    reader = safe_io.LmdbReader(sys.argv[2])
    for key in sys.argv[3:]:
        reader.get(key)
except ValueError as err:
    print('ERROR', err)
else:
    print('OK')
"""


def _read_in_child(lmdb_path, keys):
    proc = subprocess.run([sys.executable, '-c', _CHILD,
                           osp.join(REPO_ROOT, 'deblurzoo', 'data'), lmdb_path, *keys],
                          capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 0, f'the reader died (status {proc.returncode}): {proc.stderr}'
    return proc.stdout.strip()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_a_truncated_lmdb_is_refused_before_any_read(packed, tmp_path_factory, fraction):
    _, made, data = packed
    damaged = str(tmp_path_factory.mktemp('cut') / 'blur.lmdb')
    shutil.copytree(made['blur'], damaged)
    with open(osp.join(damaged, 'data.mdb'), 'wb') as f:
        f.write(data[:int(len(data) * fraction)])
    keys = ['S1/' + line.split()[0].split('/')[1][:-4] for line in open(osp.join(damaged, 'meta_info.txt'))][:1]
    out = _read_in_child(damaged, keys)
    assert out.startswith('ERROR dataroot_lq: ') and osp.join(damaged, 'data.mdb') in out
    assert 'truncated' in out or 'not a readable lmdb' in out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    damage=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=16)), min_size=1, max_size=6))
def test_a_damaged_lmdb_fails_with_its_name_never_a_signal(packed, tmp_path_factory, damage):
    _, made, data = packed
    damaged = str(tmp_path_factory.mktemp('garbled') / 'blur.lmdb')
    shutil.copytree(made['blur'], damaged)
    content = bytearray(data)
    for where, garbage in damage:
        at = int(where * len(content))
        content[at:at + len(garbage)] = garbage[:len(content) - at]
    with open(osp.join(damaged, 'data.mdb'), 'wb') as f:
        f.write(content)
    keys = [line.split()[0][:-4] for line in open(osp.join(damaged, 'meta_info.txt'))]
    out = _read_in_child(damaged, keys)
    assert out == 'OK' or (out.startswith('ERROR ') and damaged in out)


def test_check_dataset_reports_a_truncated_lmdb_instead_of_dying(packed, tmp_path, capsys):
    _, made, data = packed
    cut = str(tmp_path / 'blur.lmdb')
    shutil.copytree(made['blur'], cut)
    with open(osp.join(cut, 'data.mdb'), 'wb') as f:
        f.write(data[:len(data) // 2])
    # the check runs before the lmdb is memory-mapped (reading it would fault with SIGBUS)
    status = load_script('check_dataset').main(
        ['--type', 'GoProDataset', '--lmdb', '--dataroot-lq', cut, '--dataroot-gt', made['sharp']])
    assert status == 1
    assert f"dataroot_lq: {osp.join(cut, 'data.mdb')} is truncated: {len(data) // 2} bytes" in capsys.readouterr().out


# ---------------------------------------------------------------- atomic, verified writes


def _fail_replace(monkeypatch):

    def replace(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(safe_io.os, 'replace', replace)


def test_a_failed_write_leaves_the_target_as_it_was_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / 'flow.png'
    write_flow(str(target), np.ones(SIZE + (4, ), np.float32))
    before = target.read_bytes()
    _fail_replace(monkeypatch)
    for path in (str(target), str(tmp_path / 'new.npy')):
        with pytest.raises(OSError, match=f'cannot write {re.escape(path)}: No space left on device'):
            write_flow(path, np.zeros(SIZE + (4, ), np.float32))
    assert target.read_bytes() == before and sorted(os.listdir(tmp_path)) == ['flow.png']


def test_make_lmdb_replaces_an_lmdb_only_with_a_complete_one(packed, tmp_path, monkeypatch):
    root, made, _ = packed
    out = str(tmp_path / 'lmdb')
    make_lmdb = load_script('make_lmdb')
    first = make_lmdb.main(['--root', root, '--split', 'test', '--out', out])['test']
    snapshot = {name: open(osp.join(first['blur'], name), 'rb').read() for name in ('data.mdb', 'meta_info.txt')}
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(first['blur']).st_mode & 0o777 == 0o777 & ~umask  # not tempfile's 0o700

    # a full disk at the last write: the old lmdb stays, byte-identical, and no temporary folder is left
    _fail_replace(monkeypatch)
    with pytest.raises(OSError, match=f"cannot write the lmdb {re.escape(first['blur'])}: .*No space left"):
        make_lmdb.main(['--root', root, '--split', 'test', '--out', out, '--force'])
    monkeypatch.undo()
    for name, content in snapshot.items():
        assert open(osp.join(first['blur'], name), 'rb').read() == content
    assert sorted(os.listdir(out)) == sorted(osp.basename(p) for p in first.values())

    # a corrupt source image: refused with its name, nothing replaced
    frame = sorted(os.listdir(osp.join(root, 'test', 'S2', 'blur')))[0]
    bad_root = str(tmp_path / 'bad')
    shutil.copytree(root, bad_root)
    bad = osp.join(bad_root, 'test', 'S2', 'blur', frame)
    with open(bad, 'r+b') as f:
        f.truncate(os.path.getsize(bad) // 2)
    with pytest.raises(OSError, match=f'{re.escape(bad)}: truncated PNG'):
        make_lmdb.main(['--root', bad_root, '--split', 'test', '--out', out, '--force', '--name', 'G'])
    for name, content in snapshot.items():
        assert open(osp.join(first['blur'], name), 'rb').read() == content


def test_atomic_writes_keep_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_flow(str(tmp_path / 'a.png'), np.zeros(SIZE + (4, ), np.float32))
        assert os.stat(tmp_path / 'a.png').st_mode & 0o777 == 0o644  # not tempfile's 0o600
        os.chmod(tmp_path / 'a.png', 0o640)
        write_flow(str(tmp_path / 'a.png'), np.ones(SIZE + (4, ), np.float32))
        assert os.stat(tmp_path / 'a.png').st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(umask)
