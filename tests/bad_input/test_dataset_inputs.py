"""Bad inputs to every dataset: each case either fails with an error naming the file, folder, key or value at fault,
or is handled correctly (grayscale, RGBA, 16-bit, odd sizes, padded JPEGs); and a corrupt file read by DataLoader
workers names the file in the main process.

Each case is a builder ``build(tmp_path) -> (action, expect)``: ``action()`` builds the dataset and reads from it;
``expect`` is the regex the error must match (cases with an error type) or a function that checks what ``action``
returned (handled cases).
"""
import glob
import os
import re
import shutil
import signal
import traceback
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

import deblurzoo  # noqa: F401  (registers the datasets; patches BasicSR first)
from data_factory import (damage_file, make_dvd_lmdb, make_dvd_tree, make_gopro_lmdb, make_gopro_tree, make_hide_tree,
                          make_realblur_tree, make_reds_tree, read_rgb)
from deblurzoo.data.dvd_dataset import DVDDataset
from deblurzoo.data.gopro_dataset import GoProDataset
from deblurzoo.data.hide_dataset import HIDEDataset
from deblurzoo.data.realblur_dataset import RealBlurDataset
from deblurzoo.data.reds_dataset import REDSDeblurDataset

SEQ = 'GOPR0001_00_00'
DVD_SEQ = 'IMG_0003'
SIZE = (40, 48)


# ---------------------------------------------------------------- tiny trees and their options


def _gopro(tmp, size=SIZE, with_flow=False):
    """A one-sequence, two-frame GoPro tree: (root, its blurry frames, its sharp frames)."""
    root = make_gopro_tree(str(tmp / 'GOPRO_Large'), seqs=(SEQ, ), frames=2, size=size, with_flow=with_flow)
    return root, _files(root, 'blur'), _files(root, 'sharp')


def _files(root, folder):
    return sorted(glob.glob(osp.join(root, 'train', SEQ, folder, '*')))


def _gopro_opt(root, **kw):
    return {'name': 'gopro', 'dataroot': root, 'split': 'train', 'phase': 'val', **kw}


def _dvd(tmp, frames=3, ext='.jpg'):
    """A one-sequence DVD tree (partition 'all'): (root, its blurry frames)."""
    root = make_dvd_tree(str(tmp), seqs=(DVD_SEQ, ), frames=frames, ext=ext)
    return root, sorted(glob.glob(osp.join(root, DVD_SEQ, 'input', '*')))


def _dvd_opt(root, **kw):
    return {'name': 'dvd', 'dataroot': root, 'partition': 'all', 'phase': 'val', 'num_frame': 2, **kw}


def _raises_on_read(dataset_cls, opt):
    """An action that builds the dataset and reads its first sample."""
    return lambda: dataset_cls(opt)[0]


def _first_gopro_sample(opt):
    return lambda: GoProDataset(opt)[0]


def _lmdb_opt(lmdbs, **kw):
    return _gopro_opt(None, io_backend={'type': 'lmdb'}, dataroot_lq=lmdbs['blur'], dataroot_gt=lmdbs['sharp'], **kw)


def _rewrite_meta(lmdb, edit):
    """Rewrite an lmdb's meta_info.txt lines with ``edit(lines) -> lines``."""
    meta = osp.join(lmdb, 'meta_info.txt')
    with open(meta) as f:
        lines = f.readlines()
    with open(meta, 'w') as f:
        f.writelines(edit(lines))


def _flow_npy(tmp, flow):
    """A GoPro tree whose first frame's flow is the .npy ``flow`` (its PNG flow removed): (root, .npy path)."""
    root, _, _ = _gopro(tmp, with_flow=True)
    png = sorted(glob.glob(osp.join(root, 'train', SEQ, 'flow', '*.png')))[0]
    os.remove(png)
    npy = png[:-4] + '.npy'
    np.save(npy, flow)
    return root, npy


# ---------------------------------------------------------------- the cases: errors


def corrupt_png(tmp):
    root, blur, _ = _gopro(tmp)
    damage_file(blur[0], 'garble')
    return _first_gopro_sample(_gopro_opt(root)), re.escape(blur[0]) + ': cannot decode the image'


def truncated_png(tmp):
    root, blur, _ = _gopro(tmp)
    damage_file(blur[0], 'truncate')
    return _first_gopro_sample(_gopro_opt(root)), re.escape(blur[0]) + ': truncated PNG: no IEND chunk'


def not_an_image(tmp):
    root, _, sharp = _gopro(tmp)
    damage_file(sharp[0], 'text')
    return _first_gopro_sample(_gopro_opt(root)), re.escape(sharp[0]) + ': cannot decode the image'


def zero_byte_file(tmp):
    root, _, sharp = _gopro(tmp)
    damage_file(sharp[0], 'empty')
    return _first_gopro_sample(_gopro_opt(root)), re.escape(sharp[0]) + r': empty file \(0 bytes\)'


def corrupt_jpeg(tmp):
    root, frames = _dvd(tmp)
    damage_file(frames[1], 'garble')
    return _raises_on_read(DVDDataset, _dvd_opt(root)), re.escape(frames[1]) + ': cannot decode the image'


def truncated_jpeg(tmp):
    root, frames = _dvd(tmp)
    damage_file(frames[0], 'truncate')
    return (_raises_on_read(DVDDataset, _dvd_opt(root)),
            re.escape(frames[0]) + r': truncated JPEG: it ends before its end-of-image marker \(FFD9\)')


def count_mismatch(tmp):
    root, _, sharp = _gopro(tmp)
    os.remove(sharp[1])
    name = osp.basename(sharp[1])
    return (lambda: GoProDataset(_gopro_opt(root)),
            f'sequence {SEQ}: 2 blur frames but 1 sharp frames .*missing in sharp: {name}')


def size_mismatch(tmp):
    root, blur, sharp = _gopro(tmp)
    cv2.imwrite(sharp[0], cv2.imread(sharp[0])[:30])
    return (_first_gopro_sample(_gopro_opt(root)),
            f'size mismatch: {re.escape(blur[0])} is 40x48 .* but {re.escape(sharp[0])} is 30x48')


def smaller_than_gt_size(tmp):
    root, blur, _ = _gopro(tmp)
    opt = _gopro_opt(root, phase='train', gt_size=44)
    return _first_gopro_sample(opt), re.escape(blur[0]) + r' is 40x48 \(h x w\), smaller than gt_size 44'


def empty_sequence_folders(tmp):
    root = str(tmp / 'GOPRO_Large')
    for folder in ('blur', 'sharp'):
        os.makedirs(osp.join(root, 'train', SEQ, folder))
    return (lambda: GoProDataset(_gopro_opt(root)),
            f'sequence {SEQ} has no frames \\(in {re.escape(osp.join(root, "train", SEQ))}\\)')


def empty_split_folder(tmp):
    split_dir = str(tmp / 'GOPRO_Large' / 'train')
    os.makedirs(split_dir)
    return lambda: GoProDataset(_gopro_opt(osp.dirname(split_dir))), 'no sequence folders in ' + re.escape(split_dir)


def missing_folder(tmp):
    root, _, _ = _gopro(tmp)
    sharp_dir = osp.join(root, 'train', SEQ, 'sharp')
    shutil.rmtree(sharp_dir)
    return lambda: GoProDataset(_gopro_opt(root)), f"sequence {SEQ} has no 'sharp' folder: {re.escape(sharp_dir)}"


def missing_dataroot(tmp):
    root = str(tmp / 'nowhere')
    return lambda: GoProDataset(_gopro_opt(root)), 'GoPro dataroot not found: ' + re.escape(root)


def dvd_sequence_shorter_than_num_frame(tmp):
    root, _ = _dvd(tmp, frames=3)
    return (lambda: DVDDataset(_dvd_opt(root, num_frame=5)),
            f'1 sequence\\(s\\) of {re.escape(root)} have fewer frames than num_frame 5: {DVD_SEQ} \\(3 frames\\)')


def reds_clip_shorter_than_num_frame(tmp):
    root = make_reds_tree(str(tmp / 'REDS'), clips=('000', '001'), num_frames={'000': 4, '001': 2})
    opt = {'name': 'reds', 'dataroot_lq': osp.join(root, 'train_blur'), 'dataroot_gt': osp.join(root, 'train_sharp'),
           'num_frame': 3}
    return lambda: REDSDeblurDataset(opt), r'have fewer frames than num_frame 3: 001 \(2 frames\)'


def lmdb_key_missing_in_gt(tmp):
    root, blur, _ = _gopro(tmp)
    lmdbs = make_gopro_lmdb(root, 'train', str(tmp / 'lmdb'))
    key = f'{SEQ}/{osp.splitext(osp.basename(blur[1]))[0]}'
    _rewrite_meta(lmdbs['sharp'], lambda lines: [line for line in lines if not line.startswith(key)])
    return (lambda: GoProDataset(_lmdb_opt(lmdbs)),
            f"1 key\\(s\\) of the dataroot_lq lmdb .* are not in the dataroot_gt lmdb {re.escape(lmdbs['sharp'])}: "
            f'{key}')


def lmdb_key_not_in_database(tmp):
    root, _, _ = _gopro(tmp)
    lmdbs = make_gopro_lmdb(root, 'train', str(tmp / 'lmdb'))
    key = f'{SEQ}/999999'
    for lmdb in lmdbs.values():  # both meta_info.txt list a key their data.mdb lacks
        _rewrite_meta(lmdb, lambda lines: lines + [f'{key}.png (40,48,3) 1\n'])
    dataset = GoProDataset(_lmdb_opt(lmdbs))
    index = [s['key'] for s in dataset.samples].index(key)
    return lambda: dataset[index], f"key '{key}' not found in the lq lmdb {re.escape(lmdbs['blur'])}"


def lmdb_without_meta_info(tmp):
    root, _, _ = _gopro(tmp)
    lmdbs = make_gopro_lmdb(root, 'train', str(tmp / 'lmdb'))
    os.remove(osp.join(lmdbs['sharp'], 'meta_info.txt'))
    return lambda: GoProDataset(_lmdb_opt(lmdbs)), f"dataroot_gt: {re.escape(lmdbs['sharp'])} has no meta_info.txt"


def lmdb_malformed_meta_info(tmp):
    root, _ = _dvd(tmp, frames=2, ext='.png')
    lmdbs = make_dvd_lmdb(root, str(tmp / 'lmdb'), partition='all')
    _rewrite_meta(lmdbs['lq'], lambda lines: ['IMG_0003_00000.png (40,48,3) 1\n'] + lines)
    opt = _dvd_opt(None, io_backend={'type': 'lmdb'}, dataroot_lq=lmdbs['lq'], dataroot_gt=lmdbs['gt'])
    return lambda: DVDDataset(opt), f"{re.escape(lmdbs['lq'])}: malformed key 'IMG_0003_00000'"


def missing_flows(tmp):
    root, blur, _ = _gopro(tmp)  # no flow folder
    flow = osp.join(root, 'train', SEQ, 'flow', osp.basename(blur[0]))
    return (lambda: GoProDataset(_gopro_opt(root, use_flow=True)),
            f'missing optical flows for 2 of 2 frames, first in sequence {SEQ}: {re.escape(flow)}.*compute_flows.py')


def flow_with_two_channels(tmp):
    root, npy = _flow_npy(tmp, np.zeros((*SIZE, 2), np.float32))
    return (_first_gopro_sample(_gopro_opt(root, use_flow=True)),
            re.escape(npy) + r': expected a flow of shape \(H, W, 4\), got \(40, 48, 2\)')


def flow_of_wrong_size(tmp):
    root, npy = _flow_npy(tmp, np.zeros((30, 48, 4), np.float32))
    return _first_gopro_sample(_gopro_opt(root, use_flow=True)), 'size mismatch: .* but ' + re.escape(npy) + ' is 30x48'


def flow_with_nan(tmp):
    flow = np.zeros((*SIZE, 4), np.float32)
    flow[5, 7, 2] = np.nan
    root, npy = _flow_npy(tmp, flow)
    return (_first_gopro_sample(_gopro_opt(root, use_flow=True)),
            re.escape(npy) + r': 1 pixel\(s\) have non-finite flow values \(NaN or inf\), the first at \(y, x\) = '
            r'\(5, 7\)')


def hide_without_gt_folder(tmp):
    root = make_hide_tree(str(tmp / 'HIDE_dataset'))
    shutil.rmtree(osp.join(root, 'GT'))
    return (lambda: HIDEDataset({'name': 'hide', 'dataroot': root}),
            'HIDE sharp folder not found: ' + re.escape(osp.join(root, 'GT')))


def realblur_list_of_other_variant(tmp):
    root = make_realblur_tree(str(tmp / 'RealBlur'), variant='R')
    shutil.copy(osp.join(root, 'RealBlur_R_test_list.txt'), osp.join(root, 'RealBlur_J_test_list.txt'))
    os.makedirs(osp.join(root, 'RealBlur-J_ECC_IMCORR_centroid_itensity_ref'))
    return (lambda: RealBlurDataset({'name': 'realblur', 'dataroot': root, 'variant': 'J'}),
            r'4 pair\(s\) of ' + re.escape(osp.join(root, 'RealBlur_J_test_list.txt')) + ' are not in the RealBlur-J '
            r'folder .*\(is it a list of the other variant\?\)')


# ---------------------------------------------------------------- the cases: handled


def _sample_equals(path, transform):
    """A check that a sample's 'lq' is ``transform(cv2.imread(path, IMREAD_UNCHANGED))`` (an RGB float array)."""

    def check(sample):
        expected = transform(cv2.imread(path, cv2.IMREAD_UNCHANGED))
        assert sample['lq'].shape == (3, *SIZE) and sample['lq'].dtype == torch.float32
        assert torch.equal(sample['lq'], torch.from_numpy(np.ascontiguousarray(expected)).permute(2, 0, 1))

    return check


def grayscale_image(tmp):
    root, blur, _ = _gopro(tmp)
    cv2.imwrite(blur[0], cv2.imread(blur[0], cv2.IMREAD_GRAYSCALE))
    return (_first_gopro_sample(_gopro_opt(root)),
            _sample_equals(blur[0], lambda gray: np.repeat(gray[..., None], 3, axis=2).astype(np.float32) / 255))


def rgba_image(tmp):
    root, blur, _ = _gopro(tmp)
    bgr = cv2.imread(blur[0])
    cv2.imwrite(blur[0], np.dstack([bgr, np.full(SIZE, 7, np.uint8)]))
    return (_first_gopro_sample(_gopro_opt(root)),
            _sample_equals(blur[0], lambda bgra: bgra[..., 2::-1] / np.float32(255)))


def sixteen_bit_png(tmp):
    root, blur, _ = _gopro(tmp)
    deep = cv2.imread(blur[0]).astype(np.uint16) * 257 + 100  # values an 8-bit reading cannot hold
    cv2.imwrite(blur[0], deep)

    def check(sample):
        _sample_equals(blur[0], lambda img: img[..., ::-1] / np.float32(65535))(sample)
        assert 0 <= sample['lq'].min() and sample['lq'].max() <= 1
        assert not torch.equal(sample['lq'], (sample['lq'] * 255).round() / 255)  # finer than 8 bits

    return _first_gopro_sample(_gopro_opt(root)), check


def odd_size_training_crop(tmp):
    root, _, _ = _gopro(tmp, size=(41, 47))
    opt = _gopro_opt(root, phase='train', gt_size=16, use_hflip=True, use_rot=True)

    def check(sample):
        assert sample['lq'].shape == sample['gt'].shape == (3, 16, 16)

    return _first_gopro_sample(opt), check


def odd_size_full_frame(tmp):
    root, blur, _ = _gopro(tmp, size=(41, 47))

    def check(sample):
        assert sample['lq'].shape == sample['gt'].shape == (3, 41, 47)
        assert torch.equal(sample['lq'], read_rgb(blur[0]))

    return _first_gopro_sample(_gopro_opt(root)), check


def padded_jpeg(tmp):
    root, frames = _dvd(tmp)
    with open(frames[0], 'ab') as f:
        f.write(b'\x00' * 16 + b'\n')  # padding after the end-of-image marker, as some copy tools leave it

    def check(sample):
        assert torch.equal(sample['lq'][0], read_rgb(frames[0]))

    return _raises_on_read(DVDDataset, _dvd_opt(root)), check


ERROR_CASES = [
    (corrupt_png, ValueError),
    (truncated_png, ValueError),
    (not_an_image, ValueError),
    (zero_byte_file, ValueError),
    (corrupt_jpeg, ValueError),
    (truncated_jpeg, ValueError),
    (count_mismatch, ValueError),
    (size_mismatch, ValueError),
    (smaller_than_gt_size, ValueError),
    (empty_sequence_folders, FileNotFoundError),
    (empty_split_folder, FileNotFoundError),
    (missing_folder, FileNotFoundError),
    (missing_dataroot, FileNotFoundError),
    (dvd_sequence_shorter_than_num_frame, ValueError),
    (reds_clip_shorter_than_num_frame, ValueError),
    (lmdb_key_missing_in_gt, ValueError),
    (lmdb_key_not_in_database, KeyError),
    (lmdb_without_meta_info, FileNotFoundError),
    (lmdb_malformed_meta_info, ValueError),
    (missing_flows, FileNotFoundError),
    (flow_with_two_channels, ValueError),
    (flow_of_wrong_size, ValueError),
    (flow_with_nan, ValueError),
    (hide_without_gt_folder, FileNotFoundError),
    (realblur_list_of_other_variant, ValueError),
]
HANDLED_CASES = [grayscale_image, rgba_image, sixteen_bit_png, odd_size_training_crop, odd_size_full_frame, padded_jpeg]


def _id(build):
    return build.__name__.replace('_', '-')


@pytest.mark.parametrize(
    'build, error',
    [pytest.param(build, error, id=_id(build)) for build, error in ERROR_CASES]
    + [pytest.param(build, None, id='handled-' + _id(build)) for build in HANDLED_CASES])
def test_bad_input(build, error, tmp_path):
    action, expect = build(tmp_path)
    if error is None:
        expect(action())
    else:
        with pytest.raises(error, match=expect):
            action()


# ---------------------------------------------------------------- DataLoader workers


@pytest.fixture
def alarm():
    """Fail instead of hanging: a TimeoutError after ``seconds`` (signal.alarm; the main thread)."""

    def on_alarm(signum, frame):
        raise TimeoutError('the DataLoader did not return within the time limit (a hung worker?)')

    previous = signal.signal(signal.SIGALRM, on_alarm)
    yield signal.alarm
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _iteration_error(loader):
    """(type, message) of the exception iterating ``loader`` raises in this process, or None.

    The traceback's frames are cleared: they hold the iterator in reference cycles, which the garbage collector would
    free later, when torch's worker shutdown waits 5 s per worker; released now, it takes milliseconds.
    """
    try:
        for _ in loader:
            pass
    except Exception as err:  # whatever torch re-raises
        traceback.clear_frames(err.__traceback__)
        return type(err), str(err)
    return None


def test_worker_error_names_the_file_in_the_main_process(tmp_path, alarm):
    root = make_gopro_tree(str(tmp_path / 'GOPRO_Large'), seqs=(SEQ, ), frames=4)
    bad = damage_file(_files(root, 'blur')[2], 'truncate')
    loader = torch.utils.data.DataLoader(GoProDataset(_gopro_opt(root)), batch_size=1, num_workers=2, shuffle=False)
    alarm(60)
    error, message = _iteration_error(loader)
    alarm(0)
    assert error is ValueError  # torch re-raises the worker's exception type, with its message and traceback
    assert 'in DataLoader worker process' in message and re.search(re.escape(bad) + ': truncated PNG', message)
