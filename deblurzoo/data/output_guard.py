"""Outputs that never replace a file of the user's: checks a writer runs before it writes (or before the long work
whose result it writes), each raising a ValueError that names the option and the file.

- :func:`file_identity` and :func:`refuse_overwriting_inputs`: an output that is one of the inputs, compared by
  identity, so another name of it (a symbolic or hard link, a bind mount) is refused too;
- :func:`refuse_overlap`: an output folder inside the user's data, or holding it (links resolved);
- :func:`check_report_targets`: a report's files (``OUT.json``, ``OUT.md``) replace only an earlier report and can be
  written, checked before a measurement that takes minutes or hours; :func:`write_report` then writes one (its
  folder made, atomically through :mod:`safe_io`).

Used by the inference CLI and by the scripts that write reports, pictures, exports and datasets.
"""
import json
import os
from os import path as osp

from .safe_io import shown, write_text_atomic


def file_identity(path):
    """(device, inode) of the file at ``path`` (links followed), or None where there is none: two names of one file
    (a symbolic or hard link, a bind mount) have the same identity."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def refuse_overwriting_inputs(target, inputs, option='--out'):
    """Raise a ValueError naming ``option`` and the file when ``target`` is (by identity) one of ``inputs``."""
    identity = file_identity(target)
    if identity is not None and any(file_identity(path) == identity for path in inputs if path):
        raise ValueError(f'{option} {shown(target)} is an input; not overwriting it (choose another output)')


def refuse_overlap(out, folder, option='--out', what='the source'):
    """Raise a ValueError when the output folder ``out`` and the user's ``folder`` overlap (one is, or lies inside,
    the other; links resolved): an output written there would put files among the user's own."""
    where, real = osp.realpath(out), osp.realpath(folder)
    if osp.commonpath([where, real]) in (where, real):
        raise ValueError(f'{option} {shown(out)} and {what} {shown(folder)} overlap (one is, or lies inside, the '
                         f'other): choose an output folder outside it; nothing was written')


def _json_report(path):
    """Whether the file at ``path`` is a JSON document (what a report writer wrote before)."""
    try:
        with open(path, 'rb') as f:
            json.loads(f.read().decode('utf-8'))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return True


def check_report_targets(paths, option, inputs=()):
    """Check, before a measurement or a report that takes a while, that its files ``paths`` (``OUT.json`` and
    ``OUT.md``, say) can be written and that writing them loses nothing of the user's; a ValueError names ``option``
    and the file. Refused: a folder; one of ``inputs`` (by identity: links and hard links too); a place whose nearest
    existing folder is not a writable folder (missing folders are made when the report is written, by
    :func:`write_report`); and an existing file that is not a report of an earlier run: a ``.json`` target must hold
    JSON, any other target is replaced only beside a ``.json`` target that does (the pair an earlier run wrote)."""
    paths = [p for p in paths if p]
    reports = [p for p in paths if str(p).endswith('.json') and osp.isfile(p) and _json_report(p)]
    for path in paths:
        if osp.isdir(path):
            raise ValueError(f'{option} {shown(path)} is a folder; give a file name')
        refuse_overwriting_inputs(path, inputs, option)
        folder = osp.dirname(osp.abspath(path))
        while not osp.lexists(folder):
            folder = osp.dirname(folder)
        if not osp.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f'{option} {shown(path)}: {shown(folder)} is not a writable folder')
        if not osp.lexists(path) or path in reports:
            continue
        if str(path).endswith('.json') or not reports:
            kind = 'JSON' if str(path).endswith('.json') else 'beside a JSON report'
            raise ValueError(f'{option} {shown(path)} exists and is not a report written by an earlier run (not '
                             f'{kind}); not replacing it: remove it or choose another name')


def write_report(path, text):
    """Write a report (text) atomically (:func:`write_text_atomic`), making its folder first where it is missing."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    write_text_atomic(path, text)
