"""REDSDeblurDataset (clips, colour jitter) and REDSDeblurTestDataset (whole clips) on REDS' real names, disk and
lmdb, their validation errors, and scripts/make_lmdb.py --layout reds."""
import os
import random
import re
import shutil
from collections import Counter
from os import path as osp

import cv2
import pytest
import torch

import deblurzoo  # noqa: F401  (registers the datasets)
from basicsr.data import build_dataloader, build_dataset
from data_factory import coord_image, decode_coords, load_script, make_reds_lmdb, make_reds_tree, read_rgb
from deblurzoo.data import reds_dataset
from deblurzoo.data.reds_dataset import (SUGGESTED_JITTER, REDSDeblurDataset, REDSDeblurTestDataset,
                                         apply_color_jitter, draw_color_jitter, parse_color_jitter, reds_folders,
                                         scan_reds)

CLIPS = ('000', '001', '002')  # train clips, FRAMES frames each
FRAMES = 4
VAL_CLIPS = ('000', '001')  # val clips, VAL_FRAMES frames each
VAL_FRAMES = 3
SIZE = (40, 48)
CROP = 16
JITTER = {'brightness': 0.2, 'contrast': 0.2, 'saturation': 0.2, 'hue': 0.05}  # larger than suggested: visible


def _roots(root, split):
    return {'dataroot_lq': osp.join(root, f'{split}_blur'), 'dataroot_gt': osp.join(root, f'{split}_sharp')}


def _opt(root, split='train', **kw):
    opt = {'name': 'reds', 'type': 'REDSDeblurDataset', 'phase': 'val', 'num_frame': 3, 'io_backend': {'type': 'disk'},
           **_roots(root, split)}
    opt.update(kw)
    return opt


def _train_opt(root, **kw):
    return _opt(root, **{'phase': 'train', 'gt_size': CROP, **kw})


def _test_opt(root, split='val', **kw):
    opt = {'name': 'reds_val', 'type': 'REDSDeblurTestDataset', 'phase': 'val', **_roots(root, split)}
    opt.update(kw)
    return opt


def _lmdb(lmdbs):
    return dict(io_backend={'type': 'lmdb'}, dataroot_lq=lmdbs['lq'], dataroot_gt=lmdbs['gt'])


def _frame(root, folder, clip, t, ext='.png'):
    return osp.join(root, folder, clip, f'{t:08d}{ext}')


@pytest.fixture(scope='module')
def reds(tmp_path_factory):
    """A REDS folder (train: CLIPS of FRAMES frames; val: VAL_CLIPS of VAL_FRAMES) and lmdbs of both splits."""
    base = tmp_path_factory.mktemp('reds')
    root = make_reds_tree(str(base / 'REDS'), clips=CLIPS, num_frames=FRAMES, size=SIZE)
    make_reds_tree(root, clips=VAL_CLIPS, num_frames=VAL_FRAMES, size=SIZE, split='val')
    lmdbs = {split: make_reds_lmdb(root, str(base / 'lmdb'), split) for split in ('train', 'val')}
    return root, lmdbs


@pytest.fixture(scope='module')
def coord(tmp_path_factory):
    """Two 5-frame train clips whose pixels encode (x, y) and the frame (red: lq 40 t + 10, gt 40 t + 30)."""
    root = make_reds_tree(str(tmp_path_factory.mktemp('coord') / 'REDS'), clips=('000', '001'), num_frames=5)
    for clip in ('000', '001'):
        for t in range(5):
            cv2.imwrite(_frame(root, 'train_blur', clip, t), coord_image(SIZE, 40 * t + 10))
            cv2.imwrite(_frame(root, 'train_sharp', clip, t), coord_image(SIZE, 40 * t + 30))
    return root


@pytest.fixture
def copy_tree(reds, tmp_path):
    """A private copy of the REDS folder, for tests that break it."""
    return shutil.copytree(reds[0], str(tmp_path / 'REDS'))


# ---------------------------------------------------------------- the layout


def test_real_names_and_scan(reds, tmp_path):
    root, _ = reds
    assert osp.isfile(osp.join(root, 'train_blur', '000', '00000000.png'))
    assert osp.isfile(osp.join(root, 'val_sharp', '001', '00000002.png'))
    assert reds_folders(root, 'train') == {'lq': osp.join(root, 'train_blur'), 'gt': osp.join(root, 'train_sharp')}
    scanned = scan_reds(**{k: v for k, v in zip(('lq_root', 'gt_root'), reds_folders(root, 'train').values())})
    assert list(scanned) == list(CLIPS)
    assert [f['frame'] for f in scanned['001']] == [f'{t:08d}' for t in range(FRAMES)]
    assert scanned['001'][2] == {'lq_path': _frame(root, 'train_blur', '001', 2),
                                 'gt_path': _frame(root, 'train_sharp', '001', 2), 'frame': '00000002'}
    assert list(scan_reds(osp.join(root, 'val_blur'), osp.join(root, 'val_sharp'), clips=['001', '000'])) == [
        '001', '000']
    # the JPEG distribution of the blurry frames; copies unpacked one level down
    jpg = make_reds_tree(str(tmp_path / 'jpg'), clips=('000', ), num_frames=2, jpeg=True)
    folders = reds_folders(jpg, 'train')
    assert folders == {'lq': osp.join(jpg, 'train_blur_jpeg'), 'gt': osp.join(jpg, 'train_sharp')}
    frame = scan_reds(folders['lq'], folders['gt'])['000'][1]
    assert frame['lq_path'].endswith(osp.join('000', '00000001.jpg')) and frame['gt_path'].endswith('00000001.png')
    nested = str(tmp_path / 'nested')
    make_reds_tree(osp.join(nested, 'val'), clips=('000', ), num_frames=2, split='val')
    assert reds_folders(nested, 'val')['gt'] == osp.join(nested, 'val', 'val_sharp')
    with pytest.raises(FileNotFoundError, match=r"REDS split 'test' has no blurry folder in .*: none of .*test_blur, "):
        reds_folders(root, 'test')


# ---------------------------------------------------------------- REDSDeblurDataset: clips, shapes


@pytest.mark.parametrize('num_frame', [1, 2, 3, 4])
def test_sample_counts(reds, num_frame):
    root, _ = reds
    dataset = build_dataset(_opt(root, num_frame=num_frame))
    assert isinstance(dataset, REDSDeblurDataset) and len(dataset) == len(CLIPS) * (FRAMES - num_frame + 1)
    assert dataset.clips == [(clip, start) for clip in CLIPS for start in range(FRAMES - num_frame + 1)]


def test_images_when_num_frame_is_1(reds):
    root, _ = reds
    dataset = REDSDeblurDataset(_opt(root, num_frame=1))
    sample = dataset[FRAMES + 2]  # clip 001, frame 2
    assert set(sample) == {'lq', 'gt', 'key', 'folder', 'lq_path', 'gt_path'}
    assert sample['lq'].shape == sample['gt'].shape == (3, *SIZE) and sample['lq'].dtype == torch.float32
    assert sample['key'] == '001/00000002' and sample['folder'] == '001'
    assert sample['lq_path'] == _frame(root, 'train_blur', '001', 2)
    assert torch.equal(sample['lq'], read_rgb(sample['lq_path']))
    assert torch.equal(sample['gt'], read_rgb(_frame(root, 'train_sharp', '001', 2)))
    centre = REDSDeblurDataset(_opt(root, num_frame=1, center_frame_only=True))[FRAMES + 2]
    assert torch.equal(centre['gt'], sample['gt']) and torch.equal(centre['lq'], sample['lq'])
    # training crops are images too, batched as (B, 3, h, w)
    opt = _train_opt(root, num_frame=1, use_hflip=True, num_worker_per_gpu=0, batch_size_per_gpu=2)
    batch = next(iter(build_dataloader(build_dataset(opt), opt, num_gpu=0, dist=False, sampler=None, seed=0)))
    assert batch['lq'].shape == batch['gt'].shape == (2, 3, CROP, CROP)


def test_clips_and_centre_frame(reds):
    root, _ = reds
    sample = REDSDeblurDataset(_opt(root, num_frame=3))[1]  # clip 000, frames 1-3
    assert sample['lq'].shape == sample['gt'].shape == (3, 3, *SIZE)
    assert sample['key'] == '000/00000001' and sample['folder'] == '000'
    assert sample['lq_path'] == _frame(root, 'train_blur', '000', 2)  # the centre frame
    assert sample['gt_path'] == _frame(root, 'train_sharp', '000', 2)
    for t in range(3):
        assert torch.equal(sample['lq'][t], read_rgb(_frame(root, 'train_blur', '000', t + 1)))
        assert torch.equal(sample['gt'][t], read_rgb(_frame(root, 'train_sharp', '000', t + 1)))
    assert not torch.equal(sample['lq'], sample['gt'])
    centre = REDSDeblurDataset(_opt(root, num_frame=3, center_frame_only=True))[1]
    assert centre['gt'].shape == (3, *SIZE) and torch.equal(centre['gt'], sample['gt'][1])
    assert torch.equal(centre['lq'], sample['lq'])
    # training: the same crop, centre frame
    clips = REDSDeblurDataset(_train_opt(root, use_hflip=True, use_rot=True))
    centres = REDSDeblurDataset(_train_opt(root, use_hflip=True, use_rot=True, center_frame_only=True))
    for i in range(4):
        random.seed(i)
        a = clips[i]
        random.seed(i)
        b = centres[i]
        assert a['lq'].shape == a['gt'].shape == (3, 3, CROP, CROP) and b['gt'].shape == (3, CROP, CROP)
        assert torch.equal(b['gt'], a['gt'][1]) and torch.equal(b['lq'], a['lq'])


# ---------------------------------------------------------------- training: one crop and augmentation per clip


def test_one_crop_and_augmentation_for_the_whole_clip(coord):
    dataset = REDSDeblurDataset(_train_opt(coord, num_frame=3, use_hflip=True, use_rot=True, random_reverse=True))
    assert len(dataset) == 2 * 3
    transforms, places, orders = set(), set(), set()
    for i in range(48):
        random.seed(i)
        index = i % len(dataset)
        sample = dataset[index]
        x, y, red = decode_coords(sample['lq'])
        gx, gy, gred = decode_coords(sample['gt'])
        # every frame, lq and gt: the same window, transformed alike
        assert torch.equal(x, x[:1].expand_as(x)) and torch.equal(y, y[:1].expand_as(y))
        assert torch.equal(gx, x) and torch.equal(gy, y)
        start = dataset.clips[index][1]
        order = [int(r - 10) // 40 - start for r in red.tolist()]
        assert order in ([0, 1, 2], [2, 1, 0]) and [int(r - 30) // 40 - start for r in gred.tolist()] == order
        orders.add(tuple(order))
        x0, y0 = x[0], y[0]
        assert x0.max() - x0.min() == y0.max() - y0.min() == CROP - 1
        jacobian = (x0[0, 1] - x0[0, 0], x0[1, 0] - x0[0, 0], y0[0, 1] - y0[0, 0], y0[1, 0] - y0[0, 0])
        transforms.add(tuple(int(v) for v in jacobian))
        places.add((int(y0.min()), int(x0.min())))
    assert len(transforms) == 8 and len(places) > 5 and len(orders) == 2
    # images (num_frame 1): lq and gt from the same window
    images = REDSDeblurDataset(_train_opt(coord, num_frame=1, use_rot=True))
    for i in range(8):
        random.seed(i)
        sample = images[i]
        x, y, _ = decode_coords(sample['lq'][None])
        gx, gy, _ = decode_coords(sample['gt'][None])
        assert sample['lq'].shape == (3, CROP, CROP) and torch.equal(x, gx) and torch.equal(y, gy)


# ---------------------------------------------------------------- colour jitter


@pytest.fixture
def drawn(monkeypatch):
    """The jitter factors the datasets draw, in order."""
    factors = []

    def record(amounts):
        factors.append(draw_color_jitter(amounts))
        return factors[-1]

    monkeypatch.setattr(reds_dataset, 'draw_color_jitter', record)
    return factors


def _pairs(root, seeds=6, **kw):
    """(unjittered, jittered) samples of the same seed, crop and augmentation."""
    aug = dict(use_hflip=True, use_rot=True, random_reverse=True)
    plain = REDSDeblurDataset(_train_opt(root, **aug))
    jittered = REDSDeblurDataset(_train_opt(root, color_jitter=JITTER, **aug, **kw))
    for i in range(seeds):
        random.seed(i)
        ref = plain[i % len(plain)]
        random.seed(i)
        yield ref, jittered[i % len(plain)]


def _close(a, b):
    return torch.allclose(a, b, atol=1e-6, rtol=0)


def test_color_jitter_blurred_input_only(reds, drawn):
    root, _ = reds
    for ref, out in _pairs(root, color_jitter_gt=False):
        factors = drawn[-1]
        assert torch.equal(out['gt'], ref['gt'])  # the sharp target: the unjittered crop
        assert not torch.equal(out['lq'], ref['lq'])
        assert out['lq'].min() >= 0 and out['lq'].max() <= 1
        for t in range(3):  # every frame with the sample's one set of factors
            assert _close(out['lq'][t], apply_color_jitter(ref['lq'][t], factors))
    assert len(drawn) == 6 and len({f['brightness'] for f in drawn}) == 6  # drawn afresh for every sample
    for f in drawn:
        assert all(0.8 <= f[k] <= 1.2 for k in ('brightness', 'contrast', 'saturation')) and abs(f['hue']) <= 0.05


@pytest.mark.parametrize('kw', [{}, {'color_jitter_gt': True}], ids=['default', 'explicit'])
def test_color_jitter_gt(reds, drawn, kw):
    """By default (Brehm et al.: "for every image crop") the target gets the input's jitter."""
    root, _ = reds
    for ref, out in _pairs(root, **kw):
        assert _close(out['lq'], apply_color_jitter(ref['lq'], drawn[-1]))
        assert _close(out['gt'], apply_color_jitter(ref['gt'], drawn[-1]))
        assert not torch.equal(out['gt'], ref['gt'])


def test_color_jitter_alike_for_every_frame(tmp_path):
    root = make_reds_tree(str(tmp_path / 'REDS'), clips=('000', ), num_frames=3)
    for folder in ('train_blur', 'train_sharp'):  # a still clip: three copies of one frame
        for t in (1, 2):
            shutil.copy(_frame(root, folder, '000', 0), _frame(root, folder, '000', t))
    dataset = REDSDeblurDataset(_train_opt(root, color_jitter=JITTER, use_rot=True))
    plain = REDSDeblurDataset(_train_opt(root, use_rot=True))
    for i in range(6):
        random.seed(i)
        lq = dataset[0]['lq']
        random.seed(i)
        assert torch.equal(lq[0], lq[1]) and torch.equal(lq[0], lq[2]) and not torch.equal(lq, plain[0]['lq'])


def test_color_jitter_only_in_training(reds):
    root, _ = reds
    jittered = REDSDeblurDataset(_opt(root, color_jitter=JITTER, color_jitter_gt=True))
    plain = REDSDeblurDataset(_opt(root))
    assert all(torch.equal(jittered[i]['lq'], plain[i]['lq']) for i in range(2))


def test_color_jitter_amounts():
    assert parse_color_jitter(None) is None
    assert parse_color_jitter({'hue': 0.02}) == {'brightness': 0., 'contrast': 0., 'saturation': 0., 'hue': 0.02}
    assert parse_color_jitter(SUGGESTED_JITTER) == SUGGESTED_JITTER
    random.seed(0)
    for _ in range(50):  # torchvision ColorJitter's ranges: factors never negative
        f = draw_color_jitter({'brightness': 1.5, 'contrast': 0.1, 'saturation': 0, 'hue': 0.5})
        assert 0 <= f['brightness'] <= 2.5 and 0.9 <= f['contrast'] <= 1.1 and f['saturation'] == 1
        assert -0.5 <= f['hue'] <= 0.5
    frames = torch.rand(2, 3, 5, 6)
    assert torch.equal(apply_color_jitter(frames, draw_color_jitter(parse_color_jitter({'hue': 0}))), frames)


@pytest.mark.parametrize('jitter,match', [
    (0.05, r"color_jitter must be null \(off\) or a dict of amounts with keys among brightness, contrast, "
     r"saturation, hue"),
    ({'gamma': 0.1}, r"unknown color_jitter key\(s\) 'gamma'; accepted: brightness, contrast, saturation, hue"),
    ({'brightness': -0.1}, r'color_jitter brightness must be a number >= 0, got -0.1'),
    ({'saturation': True}, r'color_jitter saturation must be a number >= 0, got True'),
    ({'hue': 0.6}, r'color_jitter hue must be a number \[0, 0.5\] .* got 0.6'),
    ('gt_only', r'color_jitter_gt is set but color_jitter is not'),
])
def test_color_jitter_errors(reds, jitter, match):
    root, _ = reds
    opt = _train_opt(root, color_jitter_gt=True) if jitter == 'gt_only' else _train_opt(root, color_jitter=jitter)
    with pytest.raises(ValueError, match=r"REDSDeblurDataset 'reds': " + match):
        build_dataset(opt)


# ---------------------------------------------------------------- disk and lmdb


def test_disk_and_lmdb_identical(reds):
    root, lmdbs = reds
    for extra in ({}, {'phase': 'train', 'gt_size': CROP, 'use_hflip': True, 'use_rot': True,
                       'use_channel_permute': True, 'random_reverse': True, 'color_jitter': JITTER,
                       'color_jitter_gt': True}):
        disk = build_dataset(_opt(root, **extra))
        lmdb = build_dataset(_opt(root, check_sizes=True, **_lmdb(lmdbs['train']), **extra))
        assert disk.clips == lmdb.clips and len(disk) == len(CLIPS) * (FRAMES - 2)
        for i in range(len(disk)):
            random.seed(i)
            a = disk[i]
            random.seed(i)
            b = lmdb[i]
            assert a['key'] == b['key'] and a['folder'] == b['folder'] and b['lq_path'] == b['gt_path']
            assert b['lq_path'] == f"{a['folder']}/{osp.splitext(osp.basename(a['lq_path']))[0]}"
            assert torch.equal(a['lq'], b['lq']) and torch.equal(a['gt'], b['gt']), a['key']


def test_jpeg_blurry_frames(tmp_path):
    root = make_reds_tree(str(tmp_path / 'REDS'), clips=('000', '001'), num_frames=3, jpeg=True)
    opt = _opt(root, dataroot_lq=osp.join(root, 'train_blur_jpeg'))
    sample = REDSDeblurDataset(opt)[0]
    assert torch.equal(sample['lq'][1], read_rgb(_frame(root, 'train_blur_jpeg', '000', 1, '.jpg')))
    assert torch.equal(sample['gt'][1], read_rgb(_frame(root, 'train_sharp', '000', 1)))
    lmdbs = make_reds_lmdb(root, str(tmp_path / 'lmdb'))  # finds train_blur_jpeg; stored as PNG, same pixels
    other = REDSDeblurDataset(_opt(root, **_lmdb(lmdbs)))[0]
    assert torch.equal(other['lq'], sample['lq']) and torch.equal(other['gt'], sample['gt'])


def test_opt_is_not_mutated(reds):
    root, lmdbs = reds
    for cls, opt in ((REDSDeblurDataset, _train_opt(root, color_jitter=dict(JITTER))),
                     (REDSDeblurDataset, _opt(root, **_lmdb(lmdbs['train']))),
                     (REDSDeblurTestDataset, _test_opt(root, **_lmdb(lmdbs['val'])))):
        before = repr(opt)
        cls(opt)[0]
        assert repr(opt) == before


# ---------------------------------------------------------------- REDSDeblurTestDataset


def test_test_dataset_whole_clips(reds, tmp_path):
    root, lmdbs = reds
    dataset = build_dataset(_test_opt(root))
    assert isinstance(dataset, REDSDeblurTestDataset) and dataset.folders == list(VAL_CLIPS)
    assert dataset.data_info['folder'] == [clip for clip in VAL_CLIPS for _ in range(VAL_FRAMES)]
    assert dataset.data_info['lq_path'][:2] == [_frame(root, 'val_blur', '000', t) for t in range(2)]
    sample = dataset[1]
    assert set(sample) == {'lq', 'gt', 'folder', 'lq_path', 'gt_path'}  # DVDTestDataset's
    assert sample['folder'] == '001' and sample['lq'].shape == sample['gt'].shape == (VAL_FRAMES, 3, *SIZE)
    assert sample['lq_path'] == osp.join(root, 'val_blur', '001')
    assert sample['gt_path'] == osp.join(root, 'val_sharp', '001')
    for t in range(VAL_FRAMES):
        assert torch.equal(sample['lq'][t], read_rgb(_frame(root, 'val_blur', '001', t)))
        assert torch.equal(sample['gt'][t], read_rgb(_frame(root, 'val_sharp', '001', t)))
    counts = Counter(dataset.data_info['folder'])  # VideoRecurrentModel: one row of metrics per frame
    assert all(counts[dataset[i]['folder']] == dataset[i]['lq'].shape[0] for i in range(len(dataset)))
    # lmdb: the same samples
    lmdb = REDSDeblurTestDataset(_test_opt(root, **_lmdb(lmdbs['val'])))
    assert lmdb.folders == dataset.folders and lmdb.data_info['folder'] == dataset.data_info['folder']
    other = lmdb[1]
    assert other['lq_path'] == '001' and torch.equal(other['lq'], sample['lq'])
    assert torch.equal(other['gt'], sample['gt'])
    # max_frames, a clip list (BasicSR's meta_info lines work: the first word), batching
    short = REDSDeblurTestDataset(_test_opt(root, split='train', max_frames=2))
    assert short.folders == list(CLIPS) and short[2]['lq'].shape == (2, 3, *SIZE)
    (tmp_path / 'meta.txt').write_text('# clips\n002 100 (720,1280,3)\n000 100 (720,1280,3)\n')
    listed = REDSDeblurTestDataset(_test_opt(root, split='train', meta_info_file=str(tmp_path / 'meta.txt')))
    assert listed.folders == ['002', '000']
    opt = _test_opt(root, num_worker_per_gpu=0)
    batch = next(iter(build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=0)))
    assert batch['lq'].shape == (1, VAL_FRAMES, 3, *SIZE) and batch['folder'] == ['000']
    with pytest.raises(ValueError, match="REDSDeblurTestDataset 'reds_val': max_frames must be an int >= 1"):
        REDSDeblurTestDataset(_test_opt(root, max_frames=0))
    with pytest.raises(ValueError, match=r"REDSDeblurTestDataset 'reds_val': unknown option 'gt_size'"):
        REDSDeblurTestDataset(_test_opt(root, gt_size=16))


# ---------------------------------------------------------------- validation errors


@pytest.mark.parametrize('case', [
    'no_option', 'dataroot', 'empty', 'clip_only_in_blur', 'clip_only_in_sharp', 'missing_sharp_frame', 'renamed',
    'empty_clip', 'short', 'meta_unknown', 'meta_not_in_sharp', 'unknown_key', 'num_frame', 'gt_size', 'backend',
    'centre_even'
])
def test_folder_errors(copy_tree, tmp_path, case):
    root = copy_tree
    blur, sharp = osp.join(root, 'train_blur'), osp.join(root, 'train_sharp')
    opt = _opt(root)
    error = ValueError
    if case == 'no_option':
        del opt['dataroot_gt']
        match = r"REDSDeblurDataset needs the option 'dataroot_gt' \(e.g. datasets/REDS/train_sharp; <REDS>/"
    elif case == 'dataroot':
        opt['dataroot_lq'] = missing = str(tmp_path / 'nowhere')
        error, match = FileNotFoundError, re.escape(missing) + r'; expected <REDS>/\{train,val\}_blur/<clip>/<frame>'
    elif case == 'empty':
        opt['dataroot_gt'] = empty = str(tmp_path / 'empty')
        os.makedirs(empty)
        error, match = FileNotFoundError, 'no sequence folders in ' + re.escape(empty)
    elif case == 'clip_only_in_blur':
        shutil.rmtree(osp.join(sharp, '001'))
        match = f'the blurry and the sharp clips differ: 1 clip\\(s\\) of {re.escape(blur)} are not in .*: 001$'
    elif case == 'clip_only_in_sharp':
        shutil.copytree(osp.join(sharp, '002'), osp.join(sharp, '005'))
        match = f'the blurry and the sharp clips differ: 1 clip\\(s\\) of {re.escape(sharp)} are not in .*: 005$'
    elif case == 'missing_sharp_frame':
        os.remove(_frame(root, 'train_sharp', '001', 2))
        match = (f'sequence 001: 4 blur frames but 3 sharp frames \\(in {re.escape(osp.join(blur, "001"))} and '
                 f'{re.escape(osp.join(sharp, "001"))}\\); missing in sharp: 00000002$')
    elif case == 'renamed':
        os.rename(_frame(root, 'train_blur', '001', 1), _frame(root, 'train_blur', '001', 9))
        match = ('sequence 001: blur and sharp frame names differ .*; missing in sharp: 00000009; '
                 'missing in blur: 00000001$')
    elif case == 'empty_clip':
        for folder in (blur, sharp):
            shutil.rmtree(osp.join(folder, '001'))
            os.makedirs(osp.join(folder, '001'))
        error, match = FileNotFoundError, 'sequence 001 has no frames'
    elif case == 'short':
        for folder in ('train_blur', 'train_sharp'):
            os.remove(_frame(root, folder, '001', 3))
        opt['num_frame'] = 4
        match = (r"REDSDeblurDataset 'reds': 1 sequence\(s\) of .*train_blur have fewer frames than num_frame 4: 001 "
                 r'\(3 frames\); lower num_frame or leave them out \(meta_info_file\)')
    elif case == 'meta_unknown':
        (tmp_path / 'meta.txt').write_text('000\n007\n')
        opt['meta_info_file'] = str(tmp_path / 'meta.txt')
        match = r'1 sequence\(s\) not found in ' + re.escape(blur) + r': 007 \(it has 3: 000, 001, 002\)'
    elif case == 'meta_not_in_sharp':
        shutil.rmtree(osp.join(sharp, '002'))
        (tmp_path / 'meta.txt').write_text('002\n')
        opt['meta_info_file'] = str(tmp_path / 'meta.txt')
        match = r'1 sequence\(s\) not found in ' + re.escape(sharp) + ': 002'
    elif case == 'unknown_key':
        opt['num_frames'] = 5
        match = r"REDSDeblurDataset 'reds': unknown option 'num_frames' \(did you mean 'num_frame'\?\); accepted: "
    elif case == 'num_frame':
        del opt['num_frame']
        match = "'num_frame' .* is required; got None"
    elif case == 'gt_size':
        opt['phase'] = 'train'
        match = "'gt_size'.*required"
    elif case == 'backend':
        opt['io_backend'] = {'type': 'memcached'}
        match = "'memcached' is not supported by REDSDeblurDataset"
    elif case == 'centre_even':
        opt.update(num_frame=2, center_frame_only=True)
        match = 'center_frame_only needs an odd num_frame'
    with pytest.raises(error, match=match):
        build_dataset(opt)


def test_read_errors(copy_tree):
    root = copy_tree
    gt = _frame(root, 'train_sharp', '001', 2)
    cv2.imwrite(gt, cv2.imread(gt)[:, :40])  # 40 x 40 instead of 40 x 48
    dataset = REDSDeblurDataset(_opt(root))  # checked when read: constructing is fine
    first = re.escape(_frame(root, 'train_blur', '001', 0))
    with pytest.raises(ValueError, match=f'size mismatch: {first} is 40x48 .* but {re.escape(gt)} is 40x40'):
        dataset[FRAMES - 2]  # clip 001, frames 0-2
    with pytest.raises(ValueError, match=re.escape(gt) + ' is 40x40'):
        REDSDeblurDataset(_opt(root, check_sizes=True))
    with pytest.raises(ValueError, match=re.escape(gt) + ' is 40x40'):
        REDSDeblurTestDataset(_test_opt(root, split='train'))[1]
    with pytest.raises(ValueError, match='is 40x48 .*smaller than gt_size 44'):
        REDSDeblurDataset(_train_opt(root, gt_size=44))[0]


def test_lmdb_errors(reds, tmp_path):
    root, lmdbs = reds
    gt = shutil.copytree(lmdbs['train']['gt'], str(tmp_path / 'gt.lmdb'))
    lines = open(osp.join(gt, 'meta_info.txt')).readlines()
    open(osp.join(gt, 'meta_info.txt'), 'w').writelines(line for line in lines if not line.startswith('001/00000001'))
    with pytest.raises(ValueError, match=r'sequence 001: 4 lq frames but 3 gt frames .*missing in gt: 00000001$'):
        REDSDeblurDataset(_opt(root, **_lmdb(dict(lmdbs['train'], gt=gt))))
    with pytest.raises(ValueError, match="needs the option 'dataroot_lq'"):
        REDSDeblurDataset(_opt(root, io_backend={'type': 'lmdb'}, dataroot_lq=None))
    (tmp_path / 'meta.txt').write_text('002\n009\n')
    with pytest.raises(ValueError, match=r'1 sequence\(s\) not found in the dataroot_lq lmdb .*: 009'):
        REDSDeblurTestDataset(_test_opt(root, meta_info_file=str(tmp_path / 'meta.txt'), **_lmdb(lmdbs['train'])))


# ---------------------------------------------------------------- scripts/make_lmdb.py --layout reds


def test_make_lmdb_reds_layout(tmp_path, capsys):
    make_lmdb = load_script('make_lmdb')
    root = make_reds_tree(str(tmp_path / 'REDS'), clips=('000', '001'), num_frames=2)
    make_reds_tree(root, clips=('000', ), num_frames=2, split='val')
    made = make_lmdb.main(['--layout', 'reds', '--root', root])  # splits train and val
    out = osp.join(root, 'lmdb')
    assert sorted(os.listdir(out)) == ['REDS_train_blur.lmdb', 'REDS_train_sharp.lmdb', 'REDS_val_blur.lmdb',
                                       'REDS_val_sharp.lmdb']
    assert made['val'] == {'lq': osp.join(out, 'REDS_val_blur.lmdb'), 'gt': osp.join(out, 'REDS_val_sharp.lmdb')}
    meta = osp.join(out, 'REDS_train_sharp.lmdb', 'meta_info.txt')
    before = open(meta).read()
    assert before.splitlines() == [f'{clip}/{t:08d}.png (40,48,3) 1' for clip in ('000', '001') for t in range(2)]
    # the lmdb reads back as the folders do
    lmdb = REDSDeblurTestDataset(_test_opt(root, **_lmdb(made['val'])))
    assert lmdb.folders == ['000'] and torch.equal(lmdb[0]['gt'], REDSDeblurTestDataset(_test_opt(root))[0]['gt'])
    # never overwritten without --force; every split checked before anything is written
    for path in made['val'].values():
        shutil.rmtree(path)
    with pytest.raises(FileExistsError, match=re.escape(made['train']['lq']) + '.*--force'):
        make_lmdb.main(['--layout', 'reds', '--root', root, '--split', 'val', 'train'])
    assert not osp.exists(made['val']['lq']) and open(meta).read() == before
    made = make_lmdb.main(['--layout', 'reds', '--root', root, '--split', 'train', '--force', '--name', 'R'])
    assert made['train']['gt'] == osp.join(out, 'R_train_sharp.lmdb')
    # validation is the dataset's
    os.remove(_frame(root, 'train_sharp', '001', 1))
    with pytest.raises(ValueError, match='sequence 001: 2 blur frames but 1 sharp frames'):
        make_lmdb.main(['--layout', 'reds', '--root', root, '--split', 'train', '--out', str(tmp_path / 'o2')])
    with pytest.raises(SystemExit):
        make_lmdb.main(['--layout', 'reds', '--root', root, '--partition', 'test'])
    with pytest.raises(SystemExit):
        make_lmdb.main(['--help'])
    assert 'reds:  <out>/<name>_<split>_{blur,sharp}.lmdb' in capsys.readouterr().out
