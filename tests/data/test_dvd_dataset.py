"""DVDDataset (clips) and DVDTestDataset (whole sequences), disk and lmdb, their partitions and validation errors."""
import os
import random
import re
import shutil
from collections import Counter
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

import deblurzoo  # noqa: F401  (registers the datasets)
from basicsr.data import build_dataloader, build_dataset
from data_factory import (DVD_TEST_SEQS, DVD_TRAIN_SEQS, REPO_ROOT, make_dvd_lmdb, make_dvd_tree, make_gopro_tree,
                          read_rgb)
from deblurzoo.data.dvd_dataset import (DVD_TEST_META_INFO, DVDDataset, DVDTestDataset, scan_partition,
                                        scan_video_sequences)
from deblurzoo.data.layout_scan import read_keys

FRAMES = 4  # frames per sequence of the jpg tree
SIZE = (40, 48)
COORD = 4  # coordinate images: B = COORD * x, G = COORD * y, R = the frame index (lq: 40 t + 10, gt: 40 t + 30)
CROP = 16


def _opt(root, **kw):
    opt = {'name': 'dvd', 'type': 'DVDDataset', 'dataroot': root, 'phase': 'val', 'num_frame': 3,
           'io_backend': {'type': 'disk'}}
    opt.update(kw)
    return opt


def _train_opt(root, **kw):
    return _opt(root, **{'phase': 'train', 'gt_size': CROP, **kw})


def _test_opt(root, **kw):
    opt = {'name': 'dvd_test', 'type': 'DVDTestDataset', 'dataroot': root, 'phase': 'val'}
    opt.update(kw)
    return opt


def _lmdb(lmdbs, **kw):
    return dict(io_backend={'type': 'lmdb'}, dataroot_lq=lmdbs['lq'], dataroot_gt=lmdbs['gt'], **kw)


@pytest.fixture(scope='module')
def dvd(tmp_path_factory):
    """The jpg tree (2 train and the 10 test sequences of FRAMES frames) and lmdbs of all of it."""
    base = tmp_path_factory.mktemp('dvd')
    root = make_dvd_tree(str(base), frames=FRAMES)
    return root, make_dvd_lmdb(root, str(base / 'lmdb'))


@pytest.fixture(scope='module')
def coord(tmp_path_factory):
    """Two 5-frame png sequences whose pixels encode (x, y, frame index, lq or gt); see COORD."""
    root = make_dvd_tree(str(tmp_path_factory.mktemp('coord')), seqs=DVD_TRAIN_SEQS, frames=5, ext='.png')
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    for seq in DVD_TRAIN_SEQS:
        for t in range(5):
            for folder, red in (('input', 40 * t + 10), ('GT', 40 * t + 30)):
                img = np.stack([COORD * xx, COORD * yy, np.full_like(xx, red)], axis=2).astype(np.uint8)  # BGR
                cv2.imwrite(osp.join(root, seq, folder, f'{t:05d}.png'), img)
    return root


@pytest.fixture
def copy_tree(dvd, tmp_path):
    """A private copy of the jpg tree, for tests that break it."""
    return shutil.copytree(dvd[0], str(tmp_path / 'quantitative_datasets'))


def _decode(frames):
    """(T, 3, h, w) RGB coordinate frames -> x, y (T, h, w) and the red value (T) of each frame."""
    x, y = (frames[:, 2] * 255 / COORD).round(), (frames[:, 1] * 255 / COORD).round()
    red = (frames[:, 0] * 255).round()
    assert torch.all(red == red[:, :1, :1]), 'a frame mixes frames'
    return x, y, red[:, 0, 0]


# ---------------------------------------------------------------- the split, the layout, partitions


def test_meta_info_file_is_the_dvd_test_split():
    assert read_keys(DVD_TEST_META_INFO) == list(DVD_TEST_SEQS)
    lines = open(DVD_TEST_META_INFO).read().splitlines()
    assert lines[0].startswith('#') and any('71' in line for line in lines if line.startswith('#'))
    assert DVD_TEST_META_INFO == osp.join(REPO_ROOT, 'deblurzoo', 'data', 'meta_info', 'meta_info_DVD_test.txt')


def test_real_layout_and_scan(dvd):
    root, _ = dvd
    assert root.endswith(osp.join('DeepVideoDeblurring_Dataset', 'quantitative_datasets'))
    frames = scan_video_sequences(root)
    assert list(frames) == sorted(DVD_TRAIN_SEQS + DVD_TEST_SEQS)
    assert frames['IMG_0003'] == ['00000.jpg', '00001.jpg', '00002.jpg', '00003.jpg']
    assert list(scan_video_sequences(root, sequences=['IMG_0003', 'GOPR9633'])) == ['IMG_0003', 'GOPR9633']
    assert list(scan_partition(root, 'train')) == sorted(DVD_TRAIN_SEQS)
    assert list(scan_partition(root, 'test')) == sorted(DVD_TEST_SEQS)
    with pytest.raises(ValueError, match=r'1 sequence\(s\) not found in .*: IMG_9999'):
        scan_video_sequences(root, sequences=['IMG_0003', 'IMG_9999'])


@pytest.mark.parametrize('phase,partition,expected', [
    ('train', None, DVD_TRAIN_SEQS),
    ('val', None, DVD_TEST_SEQS),
    ('train', 'test', DVD_TEST_SEQS),
    ('val', 'train', DVD_TRAIN_SEQS),
    ('val', 'all', DVD_TRAIN_SEQS + DVD_TEST_SEQS),
])
def test_partitions(dvd, phase, partition, expected):
    root, lmdbs = dvd
    extra = {'gt_size': CROP} if phase == 'train' else {}
    if partition:
        extra['partition'] = partition
    disk = DVDDataset(_opt(root, phase=phase, **extra))
    lmdb = DVDDataset(_opt(None, phase=phase, **_lmdb(lmdbs), **extra))
    assert list(disk.sequences) == list(lmdb.sequences) == sorted(expected)


def test_custom_meta_info_file(dvd, tmp_path):
    root, _ = dvd
    meta = tmp_path / 'my_test.txt'
    meta.write_text('# my split\nIMG_0001\n\nIMG_0003\n')
    test = DVDTestDataset(_test_opt(root, meta_info_file=str(meta)))
    train = DVDDataset(_opt(root, partition='train', meta_info_file=str(meta)))
    assert test.folders == ['IMG_0001', 'IMG_0003']
    assert sorted(train.sequences) == sorted(set(DVD_TRAIN_SEQS + DVD_TEST_SEQS) - {'IMG_0001', 'IMG_0003'})


# ---------------------------------------------------------------- DVDDataset: clips, shapes


def test_clips_and_val_samples(dvd):
    root, _ = dvd
    dataset = build_dataset(_opt(root, partition='all', num_frame=3))
    assert isinstance(dataset, DVDDataset) and len(dataset) == 12 * (FRAMES - 3 + 1)
    assert dataset.clips[:3] == [('720p_240fps_2', 0), ('720p_240fps_2', 1), ('GOPR9633', 0)]
    sample = dataset[1]
    assert set(sample) == {'lq', 'gt', 'key', 'folder', 'lq_path', 'gt_path'}
    assert sample['lq'].shape == sample['gt'].shape == (3, 3, *SIZE) and sample['lq'].dtype == torch.float32
    assert sample['key'] == '720p_240fps_2/00001' and sample['folder'] == '720p_240fps_2'
    assert sample['lq_path'] == osp.join(root, '720p_240fps_2', 'input', '00002.jpg')  # the centre frame
    assert sample['gt_path'] == osp.join(root, '720p_240fps_2', 'GT', '00002.jpg')
    for t in range(3):  # frames in order, RGB
        assert torch.equal(sample['lq'][t], read_rgb(osp.join(root, '720p_240fps_2', 'input', f'{t + 1:05d}.jpg')))
        assert torch.equal(sample['gt'][t], read_rgb(osp.join(root, '720p_240fps_2', 'GT', f'{t + 1:05d}.jpg')))
    assert not torch.equal(sample['lq'], sample['gt'])  # blurry vs sharp
    # T = 1 and T = the whole sequence
    assert len(DVDDataset(_opt(root, num_frame=1))) == 10 * FRAMES
    whole = DVDDataset(_opt(root, num_frame=FRAMES))
    assert len(whole) == 10 and whole[0]['lq'].shape == (FRAMES, 3, *SIZE)


def test_train_shapes_and_center_frame_only(dvd):
    root, _ = dvd
    clips = DVDDataset(_train_opt(root, num_frame=3, use_hflip=True, use_rot=True))
    center = DVDDataset(_train_opt(root, num_frame=3, use_hflip=True, use_rot=True, center_frame_only=True))
    assert len(clips) == len(center) == 2 * (FRAMES - 2)
    for i in range(len(clips)):
        random.seed(i)
        a = clips[i]
        random.seed(i)
        b = center[i]
        assert a['lq'].shape == a['gt'].shape == b['lq'].shape == (3, 3, CROP, CROP)
        assert b['gt'].shape == (3, CROP, CROP) and torch.equal(b['gt'], a['gt'][1]) and torch.equal(b['lq'], a['lq'])
    val = DVDDataset(_opt(root, num_frame=3, center_frame_only=True))[0]
    assert val['lq'].shape == (3, 3, *SIZE) and val['gt'].shape == (3, *SIZE)
    assert torch.equal(val['gt'], read_rgb(val['gt_path']))
    with pytest.raises(ValueError, match='center_frame_only needs an odd num_frame.*got 4'):
        DVDDataset(_opt(root, num_frame=4, center_frame_only=True))


# ---------------------------------------------------------------- training: one crop and augmentation per clip


def test_train_one_crop_and_augmentation_for_the_whole_clip(coord):
    dataset = DVDDataset(_train_opt(coord, partition='all', num_frame=3, use_hflip=True, use_rot=True))
    assert len(dataset) == 2 * 3
    transforms, places = set(), set()
    for i in range(64):
        random.seed(i)
        index = i % len(dataset)
        sample = dataset[index]
        assert sample['lq'].shape == sample['gt'].shape == (3, 3, CROP, CROP)
        x, y, red = _decode(sample['lq'])
        gx, gy, gred = _decode(sample['gt'])
        # every frame, lq and gt: the same window, transformed alike
        assert torch.equal(x, x[:1].expand_as(x)) and torch.equal(y, y[:1].expand_as(y))
        assert torch.equal(gx, x) and torch.equal(gy, y)
        start = dataset.clips[index][1]
        assert red.tolist() == [40 * (start + t) + 10 for t in range(3)]  # frames in order, lq
        assert gred.tolist() == [40 * (start + t) + 30 for t in range(3)]  # ... and their own gt
        x0, y0 = x[0], y[0]
        assert x0.max() - x0.min() == y0.max() - y0.min() == CROP - 1  # a window of the frame
        assert set(x0.unique().tolist()) == set(range(int(x0.min()), int(x0.min()) + CROP))
        jac = (int(x0[0, 1] - x0[0, 0]), int(x0[1, 0] - x0[0, 0]), int(y0[0, 1] - y0[0, 0]), int(y0[1, 0] - y0[0, 0]))
        transforms.add(jac)
        places.add((int(y0.min()), int(x0.min())))
        assert sample['key'] == f'{dataset.clips[index][0]}/{start:05d}'
    assert len(transforms) == 8  # every flip/rotation combination was exercised
    assert len(places) > 5  # random locations


def test_random_reverse(coord):
    dataset = DVDDataset(_train_opt(coord, partition='all', num_frame=3, random_reverse=True))
    orders = set()
    for i in range(24):
        random.seed(i)
        sample = dataset[0]  # GOPR9633, frames 0-2
        _, _, red = _decode(sample['lq'])
        _, _, gred = _decode(sample['gt'])
        order = tuple(int((r - 10) / 40) for r in red.tolist())
        assert order in ((0, 1, 2), (2, 1, 0)) and [int((r - 30) / 40) for r in gred.tolist()] == list(order)
        orders.add(order)
        assert sample['key'] == 'GOPR9633/00000' and sample['lq_path'].endswith(osp.join('input', '00001.png'))
    assert orders == {(0, 1, 2), (2, 1, 0)}
    # only in training
    val = DVDDataset(_opt(coord, partition='all', num_frame=3, random_reverse=True))
    for i in range(8):
        random.seed(i)
        assert _decode(val[0]['lq'])[2].tolist() == [10, 50, 90]


def test_channel_permute_identical_for_every_frame(dvd):
    root, _ = dvd
    plain = DVDDataset(_train_opt(root, use_hflip=True, random_reverse=True))
    permuted = DVDDataset(_train_opt(root, use_hflip=True, random_reverse=True, use_channel_permute=True))
    perms = set()
    for i in range(24):
        random.seed(i)
        ref = plain[i % len(plain)]
        random.seed(i)
        out = permuted[i % len(plain)]
        matches = [p for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
                   if torch.equal(out['lq'], ref['lq'][:, list(p)]) and torch.equal(out['gt'], ref['gt'][:, list(p)])]
        assert matches, i
        perms.add(matches[0])
    assert len(perms) > 2


def test_disk_and_lmdb_identical(dvd):
    root, lmdbs = dvd
    for extra in ({}, {'phase': 'train', 'gt_size': CROP, 'use_hflip': True, 'use_rot': True,
                       'use_channel_permute': True, 'random_reverse': True}):
        disk = build_dataset(_opt(root, partition='all', **extra))
        lmdb = build_dataset(_opt(None, partition='all', check_sizes=True, **_lmdb(lmdbs), **extra))
        assert disk.clips == lmdb.clips and len(disk) == 24
        for i in range(len(disk)):
            random.seed(i)
            a = disk[i]
            random.seed(i)
            b = lmdb[i]
            assert a['key'] == b['key'] and a['folder'] == b['folder']
            assert b['lq_path'] == b['gt_path'] == f"{a['folder']}/{osp.splitext(osp.basename(a['lq_path']))[0]}"
            assert torch.equal(a['lq'], b['lq']) and torch.equal(a['gt'], b['gt']), a['key']


def test_dataloader_batches_clips(dvd):
    root, _ = dvd
    opt = _train_opt(root, num_worker_per_gpu=0, batch_size_per_gpu=2, use_hflip=True)
    loader = build_dataloader(build_dataset(opt), opt, num_gpu=0, dist=False, sampler=None, seed=0)
    batch = next(iter(loader))
    assert batch['lq'].shape == batch['gt'].shape == (2, 3, 3, CROP, CROP) and len(batch['key']) == 2


def test_opt_is_not_mutated(dvd):
    root, lmdbs = dvd
    for cls, opt in ((DVDDataset, _train_opt(root, use_rot=True)), (DVDDataset, _opt(None, **_lmdb(lmdbs))),
                     (DVDTestDataset, _test_opt(None, **_lmdb(lmdbs)))):
        before = repr(opt)
        cls(opt)[0]
        assert repr(opt) == before


# ---------------------------------------------------------------- DVDTestDataset


def test_test_dataset_sequences(dvd):
    root, lmdbs = dvd
    dataset = build_dataset(_test_opt(root))  # partition 'test' by default
    assert isinstance(dataset, DVDTestDataset) and len(dataset) == 10 and dataset.folders == sorted(DVD_TEST_SEQS)
    assert dataset.data_info['folder'] == [seq for seq in sorted(DVD_TEST_SEQS) for _ in range(FRAMES)]
    sample = dataset[1]
    assert set(sample) == {'lq', 'gt', 'folder', 'lq_path', 'gt_path'}
    assert sample['folder'] == 'IMG_0003' and sample['lq'].shape == sample['gt'].shape == (FRAMES, 3, *SIZE)
    assert sample['lq_path'] == osp.join(root, 'IMG_0003', 'input')
    for t in range(FRAMES):
        assert torch.equal(sample['lq'][t], read_rgb(osp.join(root, 'IMG_0003', 'input', f'{t:05d}.jpg')))
        assert torch.equal(sample['gt'][t], read_rgb(osp.join(root, 'IMG_0003', 'GT', f'{t:05d}.jpg')))
    # what VideoRecurrentModel.dist_validation relies on: one row of metrics per frame of each folder
    counts = Counter(dataset.data_info['folder'])
    assert all(counts[dataset[i]['folder']] == dataset[i]['lq'].shape[0] for i in range(len(dataset)))
    # lmdb: the same samples
    lmdb = DVDTestDataset(_test_opt(None, **_lmdb(lmdbs)))
    assert lmdb.folders == dataset.folders and lmdb.data_info['folder'] == dataset.data_info['folder']
    other = lmdb[1]
    assert other['lq_path'] == 'IMG_0003' and torch.equal(other['lq'], sample['lq'])
    assert torch.equal(other['gt'], sample['gt'])
    # batched as BasicSR's validation loader does
    opt = _test_opt(root, num_worker_per_gpu=0)
    batch = next(iter(build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=0)))
    assert batch['lq'].shape == (1, FRAMES, 3, *SIZE) and batch['folder'] == [dataset.folders[0]]


def test_test_dataset_max_frames_and_partitions(dvd):
    root, lmdbs = dvd
    short = DVDTestDataset(_test_opt(root, max_frames=2, partition='all'))
    assert len(short) == 12 and Counter(short.data_info['folder']) == {seq: 2 for seq in short.folders}
    assert short[0]['lq'].shape == (2, 3, *SIZE)
    assert torch.equal(short[0]['lq'], DVDTestDataset(_test_opt(root, partition='all'))[0]['lq'][:2])
    assert DVDTestDataset(_test_opt(root, max_frames=99))[0]['gt'].shape == (FRAMES, 3, *SIZE)
    train = DVDTestDataset(_test_opt(None, partition='train', phase='train', **_lmdb(lmdbs)))
    assert train.folders == sorted(DVD_TRAIN_SEQS) and train[0]['lq'].shape == (FRAMES, 3, *SIZE)  # no crop
    with pytest.raises(ValueError, match='max_frames must be an int >= 1'):
        DVDTestDataset(_test_opt(root, max_frames=0))


# ---------------------------------------------------------------- other folders of sequences (GoPro, the demo set)


def test_gopro_layout_split(tmp_path):
    gopro = make_gopro_tree(str(tmp_path / 'GOPRO_Large'), frames=4, with_flow=True)
    split = osp.join(gopro, 'train')
    folders = dict(lq_folder='blur', gt_folder='sharp', partition='all')
    clips = DVDDataset(_train_opt(split, num_frame=3, use_rot=True, **folders))
    assert len(clips) == 2 * 2 and clips[0]['lq'].shape == (3, 3, CROP, CROP)
    val = DVDDataset(_opt(split, num_frame=3, **folders))
    sample = val[0]
    seq = sorted(os.listdir(split))[0]
    names = sorted(os.listdir(osp.join(split, seq, 'blur')))
    assert sample['key'] == f'{seq}/{names[0][:-4]}' and sample['lq_path'] == osp.join(split, seq, 'blur', names[1])
    assert torch.equal(sample['gt'][2], read_rgb(osp.join(split, seq, 'sharp', names[2])))
    test = DVDTestDataset(_test_opt(split, **folders))
    assert test.folders == sorted(os.listdir(split)) and test[0]['lq'].shape == (4, 3, *SIZE)
    with pytest.raises(FileNotFoundError, match=f"sequence {seq} has no 'input' folder"):
        DVDTestDataset(_test_opt(split, partition='all'))  # DVD's folder names by default


@pytest.mark.skipif(not osp.isdir(osp.join(REPO_ROOT, 'datasets', 'demo', 'test')), reason='no demo set')
def test_demo_set():
    demo = osp.join(REPO_ROOT, 'datasets', 'demo')
    folders = dict(lq_folder='blur', gt_folder='sharp', partition='all')
    train = DVDDataset(_train_opt(osp.join(demo, 'train'), gt_size=64, num_frame=5, use_hflip=True, **folders))
    assert len(train) > 0 and train[0]['lq'].shape == (5, 3, 64, 64)
    test = DVDTestDataset(_test_opt(osp.join(demo, 'test'), max_frames=2, **folders))
    sample = test[0]
    assert len(test) > 0 and sample['lq'].shape == sample['gt'].shape and sample['lq'].shape[:2] == (2, 3)


# ---------------------------------------------------------------- validation errors


def _remove(path):
    shutil.rmtree(path) if osp.isdir(path) else os.remove(path)


@pytest.mark.parametrize('case', [
    'dataroot', 'no_seqs', 'no_gt_folder', 'missing_gt_frame', 'extra_gt_frame', 'renamed', 'empty_seq', 'short',
    'meta_unknown', 'default_test_missing', 'train_empty', 'partition', 'num_frame', 'num_frame_zero', 'gt_size',
    'backend', 'unknown_key', 'meta_file'
])
def test_folder_errors(copy_tree, tmp_path, case):
    root = copy_tree
    seq_dir = osp.join(root, 'IMG_0003')
    opt = _opt(root, partition='all')
    error = ValueError
    if case == 'dataroot':
        opt['dataroot'] = missing = str(tmp_path / 'nowhere')
        error, match = FileNotFoundError, re.escape(missing) + r'.*expected <dataroot>/<seq>/\{input,GT\}.*quantitative'
    elif case == 'no_seqs':
        opt['dataroot'] = empty = str(tmp_path / 'empty')
        os.makedirs(empty)
        error, match = FileNotFoundError, 'no sequence folders in ' + re.escape(empty)
    elif case == 'no_gt_folder':
        _remove(osp.join(seq_dir, 'GT'))
        error, match = FileNotFoundError, "sequence IMG_0003 has no 'GT' folder: " + re.escape(osp.join(seq_dir, 'GT'))
    elif case == 'missing_gt_frame':
        _remove(osp.join(seq_dir, 'GT', '00002.jpg'))
        match = r'sequence IMG_0003: 4 input frames but 3 GT frames \(in .*\); missing in GT: 00002.jpg$'
    elif case == 'extra_gt_frame':
        shutil.copy(osp.join(seq_dir, 'GT', '00003.jpg'), osp.join(seq_dir, 'GT', '00004.jpg'))
        match = r'sequence IMG_0003: 4 input frames but 5 GT frames .*; missing in input: 00004.jpg$'
    elif case == 'renamed':
        os.rename(osp.join(seq_dir, 'input', '00001.jpg'), osp.join(seq_dir, 'input', '00009.jpg'))
        match = ('sequence IMG_0003: input and GT frame names differ .*; missing in GT: 00009.jpg; '
                 'missing in input: 00001.jpg$')
    elif case == 'empty_seq':
        for folder in ('input', 'GT'):
            _remove(osp.join(seq_dir, folder))
            os.makedirs(osp.join(seq_dir, folder))
        error, match = FileNotFoundError, 'sequence IMG_0003 has no frames'
    elif case == 'short':
        for folder in ('input', 'GT'):
            _remove(osp.join(seq_dir, folder, '00003.jpg'))
        opt['num_frame'] = 4
        match = r'1 sequence\(s\) of .* have fewer frames than num_frame 4: IMG_0003 \(3 frames\)'
    elif case == 'meta_unknown':
        (tmp_path / 'meta.txt').write_text('IMG_0003\nIMG_9999\n')
        opt.update(partition='test', meta_info_file=str(tmp_path / 'meta.txt'))
        match = r'1 test sequence\(s\) of .*meta.txt are not in ' + re.escape(root) + ': IMG_9999'
    elif case == 'default_test_missing':
        _remove(osp.join(root, 'IMG_0049'))
        opt['partition'] = 'test'
        match = r'1 test sequence\(s\) of .*meta_info_DVD_test.txt are not in .*: IMG_0049'
    elif case == 'train_empty':
        (tmp_path / 'meta.txt').write_text('\n'.join(DVD_TRAIN_SEQS + DVD_TEST_SEQS))
        opt.update(partition='train', meta_info_file=str(tmp_path / 'meta.txt'))
        match = "partition 'train' of .* is empty"
    elif case == 'partition':
        opt['partition'] = 'val'
        match = "partition must be one of train, test, all, got 'val'"
    elif case == 'num_frame':
        del opt['num_frame']
        match = "'num_frame' .* is required; got None"
    elif case == 'num_frame_zero':
        opt['num_frame'] = 0
        match = "'num_frame' .* got 0"
    elif case == 'gt_size':
        opt['phase'] = 'train'
        match = "'gt_size'.*required"
    elif case == 'backend':
        opt['io_backend'] = {'type': 'memcached'}
        match = "'memcached' is not supported by DVDDataset"
    elif case == 'unknown_key':
        opt['num_frames'] = 5
        match = r"DVDDataset 'dvd': unknown option 'num_frames' \(did you mean 'num_frame'\?\)"
    elif case == 'meta_file':
        opt.update(partition='test', meta_info_file=str(tmp_path / 'missing.txt'))
        error, match = FileNotFoundError, re.escape(str(tmp_path / 'missing.txt'))
    with pytest.raises(error, match=match):
        build_dataset(opt)


def test_test_dataset_errors(copy_tree, tmp_path):
    _remove(osp.join(copy_tree, 'IMG_0003', 'GT', '00000.jpg'))
    with pytest.raises(ValueError, match='sequence IMG_0003: 4 input frames but 3 GT frames.*missing in GT: 00000.jpg'):
        DVDTestDataset(_test_opt(copy_tree))
    with pytest.raises(ValueError, match=r"DVDTestDataset 'dvd_test': unknown option 'gt_size'"):
        DVDTestDataset(_test_opt(copy_tree, gt_size=16, partition='train'))
    with pytest.raises(ValueError, match=r"needs the option 'dataroot'"):
        DVDTestDataset(_test_opt(None))


def test_lmdb_errors(dvd, tmp_path):
    _, lmdbs = dvd
    gt = shutil.copytree(lmdbs['gt'], str(tmp_path / 'gt.lmdb'))
    lines = open(osp.join(gt, 'meta_info.txt')).readlines()
    dropped = [line for line in lines if line.startswith('IMG_0003/00001')]
    open(osp.join(gt, 'meta_info.txt'), 'w').writelines(line for line in lines if line not in dropped)
    with pytest.raises(ValueError, match=r'sequence IMG_0003: 4 lq frames but 3 gt frames .*missing in gt: 00001$'):
        DVDDataset(_opt(None, **_lmdb(dict(lmdbs, gt=gt))))
    with pytest.raises(ValueError, match="needs the option 'dataroot_gt'"):
        DVDDataset(_opt(None, io_backend={'type': 'lmdb'}, dataroot_lq=lmdbs['lq']))
    # an lmdb of the training partition has no test sequences
    train_lmdbs = make_dvd_lmdb(make_dvd_tree(str(tmp_path / 'small'), seqs=DVD_TRAIN_SEQS + ('IMG_0003', ), frames=3),
                                str(tmp_path / 'lmdb'), partition='all')
    with pytest.raises(ValueError, match=r'9 test sequence\(s\) .* are not in the dataroot_lq lmdb .*: 720p_240fps_2, '
                       r'IMG_0021'):
        DVDTestDataset(_test_opt(None, **_lmdb(train_lmdbs)))


def test_read_errors(copy_tree):
    root = copy_tree
    seq_dir = osp.join(root, 'GOPR9633')
    gt = osp.join(seq_dir, 'GT', '00002.jpg')
    cv2.imwrite(gt, cv2.imread(gt)[:, :40])  # 40 x 40 instead of 40 x 48
    dataset = DVDDataset(_opt(root, partition='train'))  # lazily checked: constructing is fine
    mismatch = f'size mismatch: {re.escape(osp.join(seq_dir, "input", "00000.jpg"))} is 40x48 .* but {re.escape(gt)}'
    with pytest.raises(ValueError, match=mismatch + ' is 40x40'):
        dataset[0]
    with pytest.raises(ValueError, match=re.escape(gt) + ' is 40x40'):
        DVDTestDataset(_test_opt(root, partition='train'))[0]
    with pytest.raises(ValueError, match=re.escape(gt) + ' is 40x40'):
        DVDDataset(_opt(root, partition='train', check_sizes=True))
    # smaller than gt_size: the file is named (lazily and with check_sizes)
    shutil.copy(gt.replace('00002', '00001'), gt)
    with pytest.raises(ValueError, match=re.escape(osp.join(seq_dir, 'input', '00000.jpg')) + ' is 40x48 .*smaller '
                       'than gt_size 44'):
        DVDDataset(_train_opt(root, gt_size=44))[0]
    with pytest.raises(ValueError, match='smaller than gt_size 44'):
        DVDDataset(_train_opt(root, gt_size=44, check_sizes=True))
    # an undecodable file
    bad = osp.join(seq_dir, 'input', '00001.jpg')
    with open(bad, 'wb') as f:
        f.write(b'not a jpeg')
    with pytest.raises(ValueError, match=re.escape(bad) + ': cannot decode the image'):
        DVDDataset(_opt(root, partition='train'))[0]
