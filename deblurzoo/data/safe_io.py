"""Byte-level file I/O for deblurzoo's data: any file name works, every write is atomic, corrupt containers fail with
the file's name.

- Paths never reach OpenCV: files are read with Python (:func:`read_bytes`) and decoded from memory, images encoded
  in memory and written by :func:`write_bytes_atomic` (a temporary file beside the target, flushed and fsync'ed, its
  size checked, then ``os.replace``; the temporary file is removed on any failure, and the error names the target and
  the cause). A name that is not valid UTF-8 is a ``str`` with surrogate escapes (Python's default on POSIX) or a
  ``bytes`` path; both work, and :func:`shown` prints it escaped.
- Images whose header claims more than :func:`max_image_pixels` pixels are refused before decoding
  (:func:`check_image_header`), so a crafted or damaged header never makes the decoder allocate gigabytes or fail
  without naming the file. The limit is the environment variable ``DEBLURZOO_MAX_IMAGE_PIXELS`` (default
  :data:`DEFAULT_MAX_IMAGE_PIXELS`, 2**28: 16384 x 16384).
- LMDBs are checked before anything is read from them (:func:`check_lmdb`): a ``data.mdb`` shorter than the pages its
  meta page says it uses would make a read fault with SIGBUS (the file is memory-mapped); it is refused with the
  file's name instead. :class:`LmdbReader` reads keys (UTF-8 with surrogate escapes, so any file name can be a key)
  and names the file in every lmdb error.
- Video containers are the one thing OpenCV must open by path (its video backends take no bytes): it only ever gets
  an ASCII name, a symbolic link in a private temporary folder (:func:`safe_video_name`), never the user's path.
  :func:`video_frames` reads a video through it and refuses a stream that ends before the frame count its header
  declares (saying how many frames were read); :class:`AtomicVideoWriter` writes a temporary file beside the target
  through such a link, reopens it and counts its frames and checks their size, and only then renames it onto the
  target (a full disk, which OpenCV's writer does not report, leaves no file and is named in the error).

numpy, OpenCV and lmdb only (``scripts/compute_flows.py`` loads ``flow_util``, which imports this file, without the
package).
"""
import contextlib
import errno
import os
import re
import struct
import tempfile
from os import path as osp

import numpy as np

MAX_PIXELS_ENV = 'DEBLURZOO_MAX_IMAGE_PIXELS'
DEFAULT_MAX_IMAGE_PIXELS = 1 << 28
HEAD_BYTES = 1 << 16  # bytes read to find an image's size in its header (JPEG: up to its frame header)


def shown(name):
    """``name`` (str or bytes) for a message: undecodable bytes as ``\\xNN``, other unprintable characters escaped
    as ``repr`` escapes them; printable names unchanged."""
    if isinstance(name, bytes):
        name = name.decode('utf-8', 'surrogateescape')
    name = str(name)
    if name.isprintable():
        return name
    name = name.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def read_bytes(path):
    """The bytes of the file ``path`` (str or bytes); an OSError names the file and the cause."""
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as err:
        raise type(err)(err.errno, f'cannot read {shown(path)}: {err.strerror or err}') from None


def read_head(path, size=HEAD_BYTES):
    """The first ``size`` bytes of the file ``path``; errors as :func:`read_bytes`."""
    try:
        with open(path, 'rb') as f:
            return f.read(size)
    except OSError as err:
        raise type(err)(err.errno, f'cannot read {shown(path)}: {err.strerror or err}') from None


def default_mode(path, directory=False):
    """The permission bits a new file (or folder) at ``path`` gets: those of the file it replaces, else what the
    process's umask leaves of 0o666 (0o777 for a folder) -- not the 0o600 of ``tempfile``'s files."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return (0o777 if directory else 0o666) & ~umask


def write_bytes_atomic(path, content):
    """Write ``content`` to ``path`` atomically: a temporary file beside it, fsync'ed and its size checked, then
    renamed over ``path``. On any failure the temporary file is removed, ``path`` is left as it was and an OSError
    names the target and the cause."""
    folder = osp.dirname(osp.abspath(path))
    base = osp.basename(path)
    prefix = (b'.' + base + b'.') if isinstance(base, bytes) else f'.{base}.'
    suffix = b'.tmp' if isinstance(base, bytes) else '.tmp'
    content = memoryview(content).cast('B')
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        os.chmod(tmp, default_mode(path))
        with os.fdopen(fd, 'wb') as f:
            written = f.write(content)
            f.flush()
            os.fsync(f.fileno())
        if written != len(content) or os.stat(tmp).st_size != len(content):
            raise OSError(f'wrote {written} of {len(content)} bytes')
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        cause = err.strerror or str(err)
        raise OSError(err.errno, f'cannot write {shown(path)}: {cause}; nothing was written') from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_text_atomic(path, text):
    """Write the string ``text`` (UTF-8) to ``path`` atomically (:func:`write_bytes_atomic`): reports, tables, JSON
    and option files written by the scripts."""
    write_bytes_atomic(path, text.encode('utf-8'))


def encode_image(ext, img, params=(), name='<image>'):
    """``img`` encoded in memory as ``ext`` ('.png', '.jpg' ...) with OpenCV's ``imencode``; a ValueError names
    ``name`` (the target) if the encoder fails."""
    import cv2
    try:
        ok, buf = cv2.imencode(ext, img, list(params))
    except cv2.error as err:
        raise ValueError(f'{shown(name)}: cannot encode the image as {ext}: {str(err).strip()}') from None
    if not ok:
        raise ValueError(f'{shown(name)}: cannot encode the image as {ext} (dtype {img.dtype}, shape {img.shape})')
    return buf


def write_image(path, img, params=()):
    """Encode ``img`` by ``path``'s extension (:func:`encode_image`) and write it atomically
    (:func:`write_bytes_atomic`)."""
    ext = osp.splitext(os.fsdecode(path))[1] or '.png'
    write_bytes_atomic(path, encode_image(ext, img, params, path))


# ---------------------------------------------------------------- image headers


def max_image_pixels():
    """The largest image (in pixels, width x height) decoded: ``$DEBLURZOO_MAX_IMAGE_PIXELS`` or
    :data:`DEFAULT_MAX_IMAGE_PIXELS`."""
    value = os.environ.get(MAX_PIXELS_ENV)
    if not value:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f'{MAX_PIXELS_ENV} must be a positive integer (pixels), got {value!r}')
    return limit


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # JPEG frame headers


def image_header_size(content):
    """(h, w) that an image file's header declares (PNG, JPEG, BMP), read from its first bytes; None if the format is
    another one or the header is not within ``content`` (the decoder then has the last word)."""
    head = bytes(content[:HEAD_BYTES])
    if head[:8] == b'\x89PNG\r\n\x1a\n':
        if len(head) >= 24 and head[12:16] == b'IHDR':
            return int.from_bytes(head[20:24], 'big'), int.from_bytes(head[16:20], 'big')
        return None
    if head[:2] == b'\xff\xd8':
        pos = 2
        while pos + 4 <= len(head):
            if head[pos] != 0xFF:
                return None
            marker = head[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            length = int.from_bytes(head[pos + 2:pos + 4], 'big')
            if marker in _SOF:
                if pos + 9 > len(head):
                    return None
                return int.from_bytes(head[pos + 5:pos + 7], 'big'), int.from_bytes(head[pos + 7:pos + 9], 'big')
            if marker in (0xDA, 0xD9) or length < 2:
                return None
            pos += 2 + length
        return None
    if head[:2] == b'BM' and len(head) >= 26:
        w, h = struct.unpack('<ii', head[18:26])
        return abs(h), abs(w)
    return None


def check_image_header(content, name):
    """Refuse, before decoding, an image whose header declares an empty size or more than :func:`max_image_pixels`
    pixels: a ValueError names ``name``, the declared size and the limit."""
    size = image_header_size(content)
    if size is None:
        return
    h, w = size
    if h == 0 or w == 0:
        raise ValueError(f'{shown(name)}: its header declares an empty image ({w}x{h} pixels, w x h): corrupt')
    limit = max_image_pixels()
    if h * w > limit:
        raise ValueError(f'{shown(name)}: its header declares {w}x{h} pixels (w x h), more than the limit of {limit} '
                         f'(corrupt, or larger than deblurzoo reads; raise ${MAX_PIXELS_ENV} to read it)')


def decode_bytes(content, name, flags):
    """``cv2.imdecode`` of ``content`` after :func:`check_image_header`; None if OpenCV cannot decode it, a
    ValueError naming ``name`` for any error OpenCV raises."""
    import cv2
    check_image_header(content, name)
    try:
        return cv2.imdecode(np.frombuffer(content, np.uint8), flags)
    except cv2.error as err:
        raise ValueError(f'{shown(name)}: cannot decode the image: {str(err).strip()}') from None


def read_image(path, flags):
    """The image file ``path`` (any name) read as bytes and decoded in memory (:func:`decode_bytes`, with OpenCV's
    ``flags``); None if OpenCV cannot decode it."""
    return decode_bytes(read_bytes(path), path, flags)


# ---------------------------------------------------------------- LMDB


def _lmdb_error(path, err):
    return ValueError(f'{shown(path)}: damaged lmdb ({type(err).__name__}: {err}); rebuild it with '
                      'scripts/make_lmdb.py')


_LMDB_MAGIC = 0xBEEFC0DE
_META = struct.Struct('<II8xQ')  # at offset 16 of a meta page: magic, version, (address), map size
_META_TAIL = struct.Struct('<QQ')  # at offset 136: last page used, transaction id


def lmdb_used_bytes(data):
    """The bytes that an lmdb data file's newest valid meta page says are in use, ((last page + 1) * page size), read
    from the file's first two pages with Python (no memory map); a ValueError says why if no meta page is valid."""
    head = read_head(data, 2 * 65536)
    metas = []
    for offset in range(0, len(head), 512):  # meta page 1 starts at the page size: any power of two >= 512
        if len(head) < offset + 152:
            break
        magic, version, _ = _META.unpack_from(head, offset + 16)
        psize = struct.unpack_from('<I', head, offset + 40)[0]  # the free DB's md_pad holds the page size
        if magic != _LMDB_MAGIC or version != 1 or psize < 512 or psize & (psize - 1):
            continue
        if offset not in (0, psize):
            continue
        last_pg, txnid = _META_TAIL.unpack_from(head, offset + 136)
        metas.append((txnid, (last_pg + 1) * psize))
        if len(metas) == 2:
            break
    if not metas:
        raise ValueError(f'{len(head)} bytes and no valid meta page (not an lmdb data file, or its start is damaged)')
    return max(metas)[1]


def check_lmdb(path, option='lmdb'):
    """Check that the lmdb folder ``path`` is whole before anything is read from it: its ``data.mdb`` must hold
    every page its newest meta page says is in use (a truncated file would make reads fault with SIGBUS, the file
    being memory-mapped). Only Python reads are used. A ValueError names the file, ``option`` (the YAML key) and what
    is wrong."""
    data = osp.join(path, 'data.mdb')
    size = os.path.getsize(data)
    try:
        used = lmdb_used_bytes(data)
    except ValueError as err:
        raise ValueError(f'{option}: {shown(data)} is not a readable lmdb data file: {err}; rebuild it with '
                         'scripts/make_lmdb.py') from None
    if size < used:
        raise ValueError(f'{option}: {shown(data)} is truncated: {size} bytes, but its meta page says {used} are in '
                         'use (an interrupted copy?); copy it again or rebuild it with scripts/make_lmdb.py')


class LmdbReader:
    """Values of one lmdb by ``str`` key (encoded UTF-8 with surrogate escapes), the environment opened on first use
    (in the worker process: environments do not pickle) after :func:`check_lmdb`; lmdb errors name the file.

    Args:
        path (str): The .lmdb folder.
        options (dict): More keyword arguments of ``lmdb.open`` (``readonly``, ``lock``, ``readahead`` default to
            True, False, False, as BasicSR's FileClient opens them).
    """

    def __init__(self, path, **options):
        self.path = path
        self.options = {'readonly': True, 'lock': False, 'readahead': False, **options}
        self._env = None

    def __getstate__(self):
        return {'path': self.path, 'options': self.options, '_env': None}

    def get(self, key):
        """The bytes stored under ``key``, or None if it is absent."""
        import lmdb
        try:
            if self._env is None:
                check_lmdb(self.path)
                self._env = lmdb.open(self.path, **self.options)
            with self._env.begin(write=False) as txn:
                value = txn.get(key.encode('utf-8', 'surrogateescape'))
        except lmdb.Error as err:
            raise _lmdb_error(self.path, err) from None
        return None if value is None else bytes(value)


# ---------------------------------------------------------------- video containers

_SAFE_EXT = re.compile(r'\.[a-z0-9]{1,8}')


@contextlib.contextmanager
def safe_video_name(path):
    """A name OpenCV's video backends can open for the file ``path`` (str or bytes, any name, possibly not existing
    yet): a symbolic link ``video<ext>`` (the lower-case extension kept, which names the container when writing) in a
    private temporary folder, removed with the folder on exit. A file OpenCV opened stays open after the link is
    gone."""
    ext = osp.splitext(os.fsdecode(path))[1].lower()
    folder = tempfile.mkdtemp(prefix='deblurzoo-video-')
    link = osp.join(folder, 'video' + (ext if _SAFE_EXT.fullmatch(ext) else ''))
    try:
        os.symlink(os.fsencode(osp.abspath(path)), os.fsencode(link))
        yield link
    finally:
        try:
            os.unlink(link)
        except OSError:
            pass
        os.rmdir(folder)


def open_video(path):
    """``cv2.VideoCapture`` of the video file ``path`` (any name: opened through :func:`safe_video_name`), with its
    frame rate (25 if it declares none) and the frame count its header declares (None if none): ``(capture, fps,
    count)``. A ValueError names the file if it cannot be opened."""
    import cv2
    if not osp.isfile(path):
        raise ValueError(f'no such file: {shown(path)}')
    with safe_video_name(path) as name:
        cap = cv2.VideoCapture(name)
    if not cap.isOpened():
        cap.release()
        raise ValueError(f'cannot open video {shown(path)} (corrupt or truncated, or a codec OpenCV cannot decode)')
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0 else None
    return cap, fps, count


def short_stream_message(path, count, read):
    return (f'{shown(path)}: its header declares {count} frames, but the stream ends after {read} (truncated or '
            'damaged; if only its header is wrong, remux it, e.g. ffmpeg -i IN -c copy OUT)')


def video_frames(cap, path, count=None):
    """The frames of an opened capture (``open_video``), BGR uint8, released at the end. A stream that ends before
    ``count`` frames (the header's) raises a ValueError naming ``path``, the declared count and how many were read;
    a decoder error names ``path`` and the frame."""
    import cv2
    read = 0
    try:
        while True:
            try:
                ok, frame = cap.read()
            except cv2.error as err:
                raise ValueError(f'{shown(path)}: cannot decode frame {read}: {str(err).strip()}') from None
            if not ok:
                break
            read += 1
            yield frame
    finally:
        cap.release()
    if count is not None and read < count:
        raise ValueError(short_stream_message(path, count, read))


def read_video(path):
    """All frames of the video file ``path`` as a list of BGR uint8 arrays (:func:`open_video`,
    :func:`video_frames`); a ValueError names the file if it holds none or fewer than its header declares."""
    cap, _, count = open_video(path)
    frames = list(video_frames(cap, path, count))
    if not frames:
        raise ValueError(f'cannot decode any frame of {shown(path)} (not a video, or OpenCV built without a video '
                         'backend)')
    return frames


ENOSPC_TEXT = os.strerror(errno.ENOSPC)  # 'No space left on device'


def disk_full(folder, margin=1 << 20):
    """Whether the file system holding ``folder`` has less than ``margin`` bytes free: writers that do not report the
    cause of a failed write (OpenCV's video writer reports nothing, lmdb an I/O error) blame the disk when it is."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


class AtomicVideoWriter:
    """Write BGR uint8 frames to the video file ``path`` atomically: into a temporary file beside it (opened by
    OpenCV through :func:`safe_video_name`), which :meth:`close` fsyncs, reopens and checks (frame count and size,
    by decoding every frame) before renaming it onto ``path``. :meth:`abort` (or any failure) removes the temporary
    file; errors (OSError) name ``path`` and the cause, "No space left on device" when the disk is full.

    Args:
        path (str | bytes): The target (any name); its extension chooses the container.
        fps (float): Frame rate.
        fourcc (str): Four-character codec code, e.g. 'mp4v', 'MJPG'.
    """

    def __init__(self, path, fps, fourcc):
        self.path, self.fps, self.fourcc = os.fsdecode(path), fps, fourcc
        self.writer, self.tmp, self.size, self.count = None, None, None, 0

    def _fail(self, cause, err_no=None):
        folder = osp.dirname(osp.abspath(self.path))
        if err_no is None and disk_full(folder):
            err_no, cause = errno.ENOSPC, f'{cause}: {ENOSPC_TEXT}'
        self.abort()
        return OSError(err_no or errno.EIO, f'cannot write {shown(self.path)}: {cause}; nothing was written')

    def _open(self, size):
        import cv2
        folder = osp.dirname(osp.abspath(self.path))
        ext = osp.splitext(os.fsdecode(self.path))[1].lower()
        try:
            fd, self.tmp = tempfile.mkstemp(prefix='.deblurzoo-', suffix=ext if _SAFE_EXT.fullmatch(ext) else '',
                                            dir=folder)
            os.close(fd)
            with safe_video_name(self.tmp) as name:
                self.writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
        except OSError as err:
            raise self._fail(err.strerror or str(err), err.errno) from None
        if not self.writer.isOpened():
            raise self._fail(f'OpenCV has no {self.fourcc} encoder for {ext or "this container"} here')
        self.size = size

    def write(self, frame):
        """Append one BGR uint8 frame (the first one sets the size; all must have it)."""
        size = (frame.shape[1], frame.shape[0])
        if self.writer is None:
            self._open(size)
        elif size != self.size:
            raise self._fail(f'frame {self.count} is {size[0]}x{size[1]}, the first was {self.size[0]}x{self.size[1]}')
        self.writer.write(frame)
        self.count += 1

    def close(self):
        """Finish the file, check it and rename it onto the target; returns the number of frames written."""
        if self.writer is None:
            raise self._fail('no frames to write')
        self.writer.release()
        self.writer = None
        try:
            with open(self.tmp, 'rb+') as f:
                os.fsync(f.fileno())
        except OSError as err:
            raise self._fail(err.strerror or str(err), err.errno) from None
        found, size = 0, None
        try:  # read back through the same reader the CLI uses; a file it cannot open holds 0 frames
            cap, _, _ = open_video(self.tmp)
            for frame in video_frames(cap, self.tmp):
                found, size = found + 1, (frame.shape[1], frame.shape[0])
        except ValueError:
            pass
        if found != self.count or size != self.size:
            even = size == (self.size[0] // 2 * 2, self.size[1] // 2 * 2)
            raise self._fail(f'the file written holds {found} of the {self.count} frames'
                             + (f' at {size[0]}x{size[1]} instead of {self.size[0]}x{self.size[1]}'
                                if found and size != self.size else '')
                             + (f' (the {self.fourcc} encoder here keeps only even widths and heights: crop or pad '
                                'the input to even sizes)' if found and even and size != self.size else ''))
        try:
            os.chmod(self.tmp, default_mode(self.path))
            os.replace(self.tmp, self.path)
        except OSError as err:
            raise self._fail(err.strerror or str(err), err.errno) from None
        self.tmp = None
        return self.count

    def abort(self):
        """Stop and remove the temporary file; the target is left as it was."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None
