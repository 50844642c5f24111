"""GoProDataset (disk and lmdb), its validation errors, and scripts/make_lmdb.py."""
import os
import random
import re
import shutil
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

import deblurzoo  # noqa: F401  (registers GoProDataset)
from basicsr.data import build_dataset
from data_factory import load_script, make_gopro_lmdb, make_gopro_tree
from deblurzoo.data.flow_util import read_flow, write_flow
from deblurzoo.data.gopro_dataset import GoProDataset
from deblurzoo.data.layout_scan import png_size

SEQ = 'GOPR0001_00_00'
COORD = 4  # coordinate images: B = COORD * x, G = COORD * y (exact in uint8 for 40 x 48 frames)


def _opt(root, **kw):
    opt = {'name': 'gopro', 'type': 'GoProDataset', 'dataroot': root, 'phase': 'val', 'split': 'train',
           'io_backend': {'type': 'disk'}}
    opt.update(kw)
    return opt


def _train_opt(root, **kw):
    return _opt(root, phase='train', gt_size=16, **kw)


def _frames(root, seq=SEQ, folder='blur', split='train'):
    return sorted(os.listdir(osp.join(root, split, seq, folder)))


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    """A tree with flows, and its lmdbs."""
    base = tmp_path_factory.mktemp('gopro')
    root = make_gopro_tree(str(base / 'GOPRO_Large'), with_flow=True)
    lmdbs = make_gopro_lmdb(root, 'train', str(base / 'lmdb'))
    return root, lmdbs


@pytest.fixture(scope='module')
def coord_tree(tmp_path_factory):
    """sharp == blur, both encoding their pixel coordinates (B = 4x, G = 4y, R = 250); flow (x/2, y/4, 3, -5)."""
    root = make_gopro_tree(str(tmp_path_factory.mktemp('coord') / 'GOPRO_Large'), seqs=(SEQ, ), with_flow=True)
    yy, xx = np.mgrid[0:40, 0:48]
    img = np.stack([COORD * xx, COORD * yy, np.full_like(xx, 250)], axis=2).astype(np.uint8)  # (40, 48, 3) BGR
    flow = np.stack([xx / 2, yy / 4, np.full(xx.shape, 3.), np.full(xx.shape, -5.)], axis=2)  # (40, 48, 4)
    for name in _frames(root):
        for folder in ('blur', 'sharp'):
            cv2.imwrite(osp.join(root, 'train', SEQ, folder, name), img)
        write_flow(osp.join(root, 'train', SEQ, 'flow', name), flow)
    return root


@pytest.fixture
def copy_tree(tree, tmp_path):
    """A private copy of the flow tree, for tests that break it."""
    return shutil.copytree(tree[0], str(tmp_path / 'GOPRO_Large'))


def _coords(lq):
    """(3, h, w) RGB coordinate image -> x, y (h, w) original coordinates."""
    return (lq[2] * 255 / COORD).round(), (lq[1] * 255 / COORD).round()


# ---------------------------------------------------------------- construction, samples


def test_build_dataset_val_full_frames(tree):
    root, _ = tree
    dataset = build_dataset(_opt(root))
    assert isinstance(dataset, GoProDataset) and len(dataset) == 6
    sample = dataset[0]
    assert set(sample) == {'lq', 'gt', 'lq_path', 'gt_path', 'key'}
    assert sample['lq'].shape == sample['gt'].shape == (3, 40, 48) and sample['lq'].dtype == torch.float32
    assert 0 <= sample['lq'].min() and sample['lq'].max() <= 1
    first = _frames(root)[0]
    assert sample['key'] == f'{SEQ}/{osp.splitext(first)[0]}' and re.fullmatch(r'GOPR0001_00_00/\d{6}', sample['key'])
    assert sample['lq_path'] == osp.join(root, 'train', SEQ, 'blur', first)
    assert sample['gt_path'] == osp.join(root, 'train', SEQ, 'sharp', first)
    # RGB: the file is BGR
    bgr = cv2.imread(sample['lq_path']).astype(np.float32) / 255
    assert np.allclose(sample['lq'].permute(1, 2, 0).numpy(), bgr[..., ::-1])
    # frame numbers follow GoPro's (a per-sequence start, not 000000)
    assert [s['key'] for s in dataset.samples] == sorted(s['key'] for s in dataset.samples)
    assert not first.startswith('000000')


def test_split_defaults_from_phase(tree, tmp_path):
    root = make_gopro_tree(str(tmp_path / 'G'), split='test', seqs=('GOPR0003_00_00', ))
    opt = _opt(root)
    del opt['split']
    assert GoProDataset(opt).samples[0]['key'].startswith('GOPR0003_00_00/')  # phase val -> test
    with pytest.raises(FileNotFoundError, match=re.escape(osp.join(root, 'train'))):
        GoProDataset(dict(opt, phase='train', gt_size=16))  # phase train -> train, absent here


def test_flow_sample_and_blur_gamma(tree, tmp_path):
    root, _ = tree
    sample = GoProDataset(_opt(root, use_flow=True))[1]
    assert sample['flow'].shape == (4, 40, 48) and sample['flow'].dtype == torch.float32
    expected = read_flow(osp.join(osp.dirname(sample['lq_path']), '..', 'flow', osp.basename(sample['lq_path'])))
    assert torch.equal(sample['flow'], torch.from_numpy(expected).permute(2, 0, 1))
    # blur_gamma and a separate flow root (dataroot_flow)
    gamma = shutil.copytree(root, str(tmp_path / 'G'), ignore=shutil.ignore_patterns('flow'))
    for seq in os.listdir(osp.join(gamma, 'train')):
        os.rename(osp.join(gamma, 'train', seq, 'blur'), osp.join(gamma, 'train', seq, 'blur_gamma'))
    other = GoProDataset(_opt(gamma, blur_folder='blur_gamma', use_flow=True, dataroot_flow=root))[1]
    assert other['lq_path'].endswith(osp.join('blur_gamma', osp.basename(sample['lq_path'])))
    assert torch.equal(other['lq'], sample['lq']) and torch.equal(other['flow'], sample['flow'])


def test_disk_and_lmdb_identical(tree):
    root, lmdbs = tree
    lmdb_opt = _opt(None, io_backend={'type': 'lmdb'}, dataroot_lq=lmdbs['blur'], dataroot_gt=lmdbs['sharp'],
                    dataroot_flow=lmdbs['flow'], use_flow=True, check_sizes=True)
    for phase_opt in ({}, {'phase': 'train', 'gt_size': 16, 'use_hflip': True, 'use_rot': True,
                           'use_channel_permute': True}):
        disk = build_dataset(_opt(root, use_flow=True, **phase_opt))
        lmdb = build_dataset(dict(lmdb_opt, **phase_opt))
        assert len(disk) == len(lmdb) == 6
        for i in range(len(disk)):
            random.seed(i)
            a = disk[i]
            random.seed(i)
            b = lmdb[i]
            assert a['key'] == b['key'] == b['lq_path'] == b['gt_path']
            for name in ('lq', 'gt', 'flow'):
                assert torch.equal(a[name], b[name]), (name, a['key'])


def test_meta_info_selects_pairs(tree, tmp_path):
    root, lmdbs = tree
    keys = [s['key'] for s in GoProDataset(_opt(root)).samples]
    meta = tmp_path / 'meta.txt'
    meta.write_text(f'# custom split\n{keys[4]}\n\n{keys[1]}.png (40,48,3) 1\n')
    disk = GoProDataset(_opt(root, meta_info_file=str(meta), use_flow=True))
    lmdb = GoProDataset(_opt(None, io_backend={'type': 'lmdb'}, dataroot_lq=lmdbs['blur'], dataroot_gt=lmdbs['sharp'],
                             meta_info_file=str(meta)))
    assert [s['key'] for s in disk.samples] == [s['key'] for s in lmdb.samples] == [keys[4], keys[1]]
    assert disk[0]['key'] == keys[4] and torch.equal(disk[1]['lq'], lmdb[1]['lq'])


def test_check_sizes_and_png_header(tree):
    root, _ = tree
    dataset = GoProDataset(_opt(root, use_flow=True, check_sizes=True))
    sample = dataset.samples[0]
    for path in (sample['lq_path'], sample['flow_path']):
        assert png_size(path) == cv2.imread(path, cv2.IMREAD_UNCHANGED).shape[:2] == (40, 48)


# ---------------------------------------------------------------- training: crop, alignment, augmentation


def test_train_crop_aligned(coord_tree):
    dataset = GoProDataset(_train_opt(coord_tree, use_flow=True))
    seen = set()
    for i in range(12):
        random.seed(i)
        sample = dataset[i % len(dataset)]
        lq, gt, flow = sample['lq'], sample['gt'], sample['flow']
        assert lq.shape == gt.shape == (3, 16, 16) and flow.shape == (4, 16, 16)
        assert torch.equal(lq, gt)  # the same crop location in blur and sharp
        x, y = _coords(lq)
        assert torch.equal(x - x[0, 0], torch.arange(16.).expand(16, 16))  # a crop, not flipped
        assert torch.equal(flow[0], x / 2) and torch.equal(flow[1], y / 4)  # ... and in the flow
        assert torch.all(flow[2] == 3) and torch.all(flow[3] == -5)
        seen.add((int(y[0, 0]), int(x[0, 0])))
    assert len(seen) > 3  # random locations


def test_flow_follows_flips_and_rotations(coord_tree):
    """The flow vectors transform with the image: new vector = J^-1 old vector, J = d(old xy) / d(new xy)."""
    dataset = GoProDataset(_train_opt(coord_tree, use_flow=True, use_hflip=True, use_rot=True))
    seen = set()
    for i in range(64):
        random.seed(i)
        sample = dataset[0]
        lq, flow = sample['lq'], sample['flow']
        assert torch.equal(lq, sample['gt'])
        x, y = _coords(lq)  # original coordinates at each new pixel, (16, 16) each
        # columns of J: change of the original (x, y) per step along the new x (column) and new y (row)
        jac = torch.tensor([[x[0, 1] - x[0, 0], x[1, 0] - x[0, 0]], [y[0, 1] - y[0, 0], y[1, 0] - y[0, 0]]])
        assert torch.equal(jac.abs().sum(0), torch.ones(2)) and torch.equal(jac.abs().sum(1), torch.ones(2))
        seen.add(tuple(jac.flatten().tolist()))
        inv = jac.T  # a signed permutation: orthogonal
        prev_old = torch.stack([x / 2, y / 4])  # (2, 16, 16), the stored flow at those original pixels
        assert torch.equal(flow[:2], torch.einsum('ij,jhw->ihw', inv, prev_old))
        assert torch.equal(flow[2:], (inv @ torch.tensor([3., -5.]))[:, None, None].expand(2, 16, 16))
    assert len(seen) == 8  # every flip/rotation combination was exercised
    # hflip alone negates u only
    hflip = GoProDataset(_train_opt(coord_tree, use_flow=True, use_hflip=True))
    signs = set()
    for i in range(16):
        random.seed(i)
        sample = hflip[0]
        x, _ = _coords(sample['lq'])
        flipped = bool(x[0, 1] < x[0, 0])
        signs.add(flipped)
        assert torch.all(sample['flow'][2] == (-3 if flipped else 3)) and torch.all(sample['flow'][3] == -5)
    assert signs == {True, False}


def test_channel_permute_identical_in_lq_and_gt(tree):
    root, _ = tree
    plain = GoProDataset(_train_opt(root, use_flow=True, use_hflip=True))
    permuted = GoProDataset(_train_opt(root, use_flow=True, use_hflip=True, use_channel_permute=True))
    perms = set()
    for i in range(24):
        random.seed(i)
        ref = plain[i % 6]
        random.seed(i)
        out = permuted[i % 6]
        matches = [p for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
                   if torch.equal(out['lq'], ref['lq'][list(p)]) and torch.equal(out['gt'], ref['gt'][list(p)])]
        assert matches, i
        perms.add(matches[0])
        assert torch.equal(out['flow'], ref['flow'])  # flows are not colours
    assert len(perms) > 2


def test_normalisation(tree):
    root, _ = tree
    plain = GoProDataset(_opt(root))[0]
    normed = GoProDataset(_opt(root, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]))[0]
    for name in ('lq', 'gt'):
        assert torch.allclose(normed[name], (plain[name] - 0.5) / 0.25)


# ---------------------------------------------------------------- validation errors


def _remove(path):
    shutil.rmtree(path) if osp.isdir(path) else os.remove(path)


@pytest.mark.parametrize('case', [
    'dataroot', 'split', 'no_seqs', 'no_sharp', 'count', 'names', 'flow_file', 'flow_folder', 'meta_key', 'meta_seq',
    'meta_file', 'gt_size', 'backend'
])
def test_folder_errors(copy_tree, tmp_path, case):
    root = copy_tree
    seq_dir = osp.join(root, 'train', SEQ)
    first, last = _frames(root)[0], _frames(root)[-1]
    opt = _opt(root)
    if case == 'dataroot':
        opt['dataroot'] = missing = str(tmp_path / 'nowhere')
        error, match = FileNotFoundError, re.escape(missing) + '.*expected.*<seq>/{blur,blur_gamma,sharp}'
    elif case == 'split':
        opt['split'] = 'test'
        error, match = FileNotFoundError, re.escape(osp.join(root, 'test')) + r".*\['train'\]"
    elif case == 'no_seqs':
        _remove(osp.join(root, 'train'))
        os.makedirs(osp.join(root, 'train'))
        error, match = FileNotFoundError, 'no sequence folders in ' + re.escape(osp.join(root, 'train'))
    elif case == 'no_sharp':
        _remove(osp.join(seq_dir, 'sharp'))
        error, match = FileNotFoundError, f"sequence {SEQ} has no 'sharp' folder"
    elif case == 'count':
        _remove(osp.join(seq_dir, 'sharp', last))
        error, match = ValueError, f'sequence {SEQ}: 3 blur frames but 2 sharp frames .*missing in sharp: {last}'
    elif case == 'names':
        os.rename(osp.join(seq_dir, 'blur', first), osp.join(seq_dir, 'blur', '999999.png'))
        error, match = ValueError, f'{SEQ}.*missing in sharp: 999999.png; missing in blur: {first}'
    elif case == 'flow_file':
        _remove(osp.join(seq_dir, 'flow', last))
        opt['use_flow'] = True
        error = FileNotFoundError
        match = (f'1 of 6 frames, first in sequence {SEQ}: ' + re.escape(osp.join(seq_dir, 'flow', last)) +
                 '.*run scripts/compute_flows.py --root ' + re.escape(root))
    elif case == 'flow_folder':
        _remove(osp.join(seq_dir, 'flow'))
        opt['use_flow'] = True
        error, match = FileNotFoundError, f'3 of 6 frames, first in sequence {SEQ}: .*compute_flows.py'
    elif case in ('meta_key', 'meta_seq'):
        meta = tmp_path / 'meta.txt'
        bad = f'{SEQ}/000000' if case == 'meta_key' else 'GOPR9999_00_00/000001'
        meta.write_text(f'{SEQ}/{first[:-4]}\n{bad}\n')
        opt['meta_info_file'] = str(meta)
        error, match = ValueError, f'1 key\\(s\\).*{bad}'
    elif case == 'meta_file':
        opt['meta_info_file'] = missing = str(tmp_path / 'missing.txt')
        error, match = FileNotFoundError, re.escape(missing)
    elif case == 'gt_size':
        opt['phase'] = 'train'
        error, match = ValueError, "'gt_size'.*required"
    elif case == 'backend':
        opt['io_backend'] = {'type': 'memcached'}
        error, match = ValueError, "'memcached' is not supported"
    with pytest.raises(error, match=match):
        GoProDataset(opt)


@pytest.mark.parametrize('case', ['missing', 'not_lmdb', 'no_option', 'no_flow_lmdb', 'keys_differ', 'meta_key'])
def test_lmdb_errors(tree, tmp_path, case):
    _, lmdbs = tree
    opt = _opt(None, io_backend={'type': 'lmdb'}, dataroot_lq=lmdbs['blur'], dataroot_gt=lmdbs['sharp'])
    if case == 'missing':
        opt['dataroot_gt'] = missing = str(tmp_path / 'x.lmdb')
        error, match = FileNotFoundError, 'dataroot_gt: lmdb not found: ' + re.escape(missing)
    elif case == 'not_lmdb':
        opt['dataroot_lq'] = str(tmp_path)
        error, match = ValueError, f'dataroot_lq: {re.escape(str(tmp_path))} is not an lmdb'
    elif case == 'no_option':
        del opt['dataroot_gt']
        error, match = ValueError, "needs the option 'dataroot_gt'"
    elif case == 'no_flow_lmdb':
        opt['use_flow'] = True
        error, match = ValueError, "needs the option 'dataroot_flow'"
    elif case == 'keys_differ':
        gt = shutil.copytree(lmdbs['sharp'], str(tmp_path / 'gt.lmdb'))
        lines = open(osp.join(gt, 'meta_info.txt')).readlines()
        open(osp.join(gt, 'meta_info.txt'), 'w').writelines(lines[1:])
        opt['dataroot_gt'] = gt
        error, match = ValueError, f"1 key\\(s\\).*not in the dataroot_gt lmdb .*{lines[0].split('.')[0]}"
    elif case == 'meta_key':
        (tmp_path / 'meta.txt').write_text('GOPR0001_00_00/000000\n')
        opt['meta_info_file'] = str(tmp_path / 'meta.txt')
        error, match = ValueError, 'not in the dataroot_lq lmdb.*GOPR0001_00_00/000000'
    with pytest.raises(error, match=match):
        GoProDataset(opt)


def test_size_errors(copy_tree):
    root = copy_tree
    name = _frames(root)[1]
    lq = osp.join(root, 'train', SEQ, 'blur', name)
    gt = osp.join(root, 'train', SEQ, 'sharp', name)
    cv2.imwrite(gt, cv2.imread(gt)[:, :40])  # 40 x 40 instead of 40 x 48
    dataset = GoProDataset(_opt(root))  # lazily checked: constructing is fine
    dataset[0]
    match = f'size mismatch: {re.escape(lq)} is 40x48 .* but {re.escape(gt)} is 40x40'
    with pytest.raises(ValueError, match=match):
        dataset[1]
    with pytest.raises(ValueError, match=match):
        GoProDataset(_opt(root, check_sizes=True))
    # the flow's size too
    cv2.imwrite(gt, cv2.imread(lq))
    flow = osp.join(root, 'train', SEQ, 'flow', name)
    write_flow(flow, read_flow(flow)[:30])
    with pytest.raises(ValueError, match=re.escape(flow) + '.* is 30x48'):
        GoProDataset(_opt(root, use_flow=True))[1]
    # smaller than gt_size: the file is named (lazily and with check_sizes)
    write_flow(flow, read_flow(flow.replace(name, _frames(root)[0])))
    small = GoProDataset(_opt(root, phase='train', gt_size=44))
    with pytest.raises(ValueError, match=re.escape(lq) + ' is 40x48 .*smaller than gt_size 44'):
        small[1]
    with pytest.raises(ValueError, match='smaller than gt_size 44'):
        GoProDataset(_opt(root, phase='train', gt_size=44, check_sizes=True))


# ---------------------------------------------------------------- scripts/make_lmdb.py


def test_make_lmdb_names_and_refuses_overwrite(tmp_path):
    make_lmdb = load_script('make_lmdb')
    root = make_gopro_tree(str(tmp_path / 'demo'), with_flow=True)
    make_gopro_tree(root, split='test', seqs=('GOPR0003_00_00', ))  # no flows in test
    out = str(tmp_path / 'out')
    made = make_lmdb.main(['--root', root, '--split', 'train', 'test', '--out', out])
    assert sorted(os.listdir(out)) == ['demo_test_blur.lmdb', 'demo_test_sharp.lmdb', 'demo_train_blur.lmdb',
                                       'demo_train_flow.lmdb', 'demo_train_sharp.lmdb']
    assert made['train']['flow'] == osp.join(out, 'demo_train_flow.lmdb') and 'flow' not in made['test']
    assert make_lmdb.default_name('datasets/GOPRO_Large/') == 'GOPRO'
    meta = osp.join(out, 'demo_train_blur.lmdb', 'meta_info.txt')
    before = open(meta).read()
    assert before.splitlines()[0].startswith(f'{SEQ}/') and '(40,48,3)' in before
    with pytest.raises(FileExistsError, match=re.escape(osp.join(out, 'demo_train_blur.lmdb')) + '.*--force'):
        make_lmdb.main(['--root', root, '--split', 'train', '--out', out])
    assert open(meta).read() == before  # untouched
    os.makedirs(osp.join(tmp_path, 'o2', 'x_train_sharp.lmdb'))  # not an lmdb: kept even with --force
    with pytest.raises(FileExistsError, match='not an lmdb'):
        make_lmdb.main(['--root', root, '--split', 'train', '--out', str(tmp_path / 'o2'), '--name', 'x', '--force'])
    assert not osp.exists(osp.join(tmp_path, 'o2', 'x_train_blur.lmdb'))  # checked before anything was written
    # with several splits, all targets are checked before any is written
    for kind in ('blur', 'sharp'):
        shutil.rmtree(osp.join(out, f'demo_test_{kind}.lmdb'))
    with pytest.raises(FileExistsError, match='demo_train_blur.lmdb'):
        make_lmdb.main(['--root', root, '--split', 'test', 'train', '--out', out])
    assert not osp.exists(osp.join(out, 'demo_test_blur.lmdb'))
    # --force replaces; --no-flow skips flows
    made = make_lmdb.main(['--root', root, '--split', 'train', '--out', out, '--force', '--no-flow'])
    assert set(made['train']) == {'blur', 'sharp'} and open(meta).read() == before
    # the validation is the dataset's
    _remove(osp.join(root, 'train', SEQ, 'flow', _frames(root)[0]))
    with pytest.raises(FileNotFoundError, match='compute_flows.py'):
        make_lmdb.main(['--root', root, '--split', 'train', '--out', str(tmp_path / 'o3')])


def test_make_lmdb_dvd_layout(tmp_path):
    from data_factory import DVD_TEST_SEQS, DVD_TRAIN_SEQS, make_dvd_tree
    make_lmdb = load_script('make_lmdb')
    root = make_dvd_tree(str(tmp_path), frames=2)  # <tmp>/DeepVideoDeblurring_Dataset/quantitative_datasets
    made = make_lmdb.main(['--layout', 'dvd', '--root', root])  # partitions train and test, DVD's test split
    out = osp.join(tmp_path, 'DeepVideoDeblurring_Dataset', 'lmdb')  # beside the root: not a sequence folder
    assert sorted(os.listdir(out)) == ['DVD_test_GT.lmdb', 'DVD_test_input.lmdb', 'DVD_train_GT.lmdb',
                                       'DVD_train_input.lmdb']
    assert made['train'] == {'lq': osp.join(out, 'DVD_train_input.lmdb'), 'gt': osp.join(out, 'DVD_train_GT.lmdb')}
    meta = osp.join(out, 'DVD_train_input.lmdb', 'meta_info.txt')
    before = open(meta).read()
    assert before.splitlines()[0] == 'GOPR9633/00000.png (40,48,3) 1'
    assert {line.split('/')[0] for line in before.splitlines()} == set(DVD_TRAIN_SEQS)
    test_keys = open(osp.join(out, 'DVD_test_GT.lmdb', 'meta_info.txt')).read().splitlines()
    assert {line.split('/')[0] for line in test_keys} == set(DVD_TEST_SEQS) and len(test_keys) == 20
    # the lmdb reads back as the folder does
    lmdb = build_dataset({'name': 'lmdb', 'type': 'DVDTestDataset', 'phase': 'val', 'io_backend': {'type': 'lmdb'},
                          'dataroot_lq': made['test']['lq'], 'dataroot_gt': made['test']['gt']})
    disk = build_dataset({'name': 'disk', 'type': 'DVDTestDataset', 'phase': 'val', 'dataroot': root})
    assert lmdb.folders == disk.folders and torch.equal(lmdb[3]['lq'], disk[3]['lq'])
    # never overwritten without --force; all targets checked before anything is written
    for path in made['test'].values():
        shutil.rmtree(path)
    with pytest.raises(FileExistsError, match=re.escape(made['train']['lq']) + '.*--force'):
        make_lmdb.main(['--layout', 'dvd', '--root', root, '--partition', 'test', 'train'])
    assert not osp.exists(made['test']['lq']) and open(meta).read() == before
    make_lmdb.main(['--layout', 'dvd', '--root', root, '--partition', 'train', '--force'])
    assert open(meta).read() == before
    # validated first by the dataset's scan: errors name the sequence and the frame
    os.remove(osp.join(root, 'IMG_0001', 'GT', '00001.jpg'))
    with pytest.raises(ValueError, match='sequence IMG_0001: 2 input frames but 1 GT frames.*missing in GT: 00001.jpg'):
        make_lmdb.main(['--layout', 'dvd', '--root', root, '--out', str(tmp_path / 'o2')])
    assert not osp.exists(tmp_path / 'o2')
    # any folder of sequences: a GoPro split with its folder names, partition all, a custom test list
    gopro = make_gopro_tree(str(tmp_path / 'GOPRO_Large'))
    (tmp_path / 'test.txt').write_text('GOPR0002_00_00\n')
    made = make_lmdb.main(['--layout', 'dvd', '--root', osp.join(gopro, 'train'), '--lq-folder', 'blur', '--gt-folder',
                           'sharp', '--partition', 'all', 'test', '--meta-info-file', str(tmp_path / 'test.txt'),
                           '--out', str(tmp_path / 'o3'), '--name', 'gopro'])
    assert made['all']['lq'] == str(tmp_path / 'o3' / 'gopro_all_blur.lmdb')
    assert len(open(osp.join(made['all']['gt'], 'meta_info.txt')).readlines()) == 6
    assert {line.split('/')[0] for line in open(osp.join(made['test']['lq'], 'meta_info.txt'))} == {'GOPR0002_00_00'}
    with pytest.raises(SystemExit):  # --split is GoPro's
        make_lmdb.main(['--layout', 'dvd', '--root', root, '--split', 'train'])
    with pytest.raises(SystemExit):  # --partition is DVD's
        make_lmdb.main(['--root', gopro, '--partition', 'train'])


def test_unknown_option_key_is_named_with_a_suggestion(tmp_path):
    root = make_gopro_tree(str(tmp_path / 'GOPRO_Large'), split='test')
    opt = {'name': 'typo', 'type': 'GoProDataset', 'phase': 'test', 'dataroot': root, 'use_flwo': True}
    expected = r"GoProDataset 'typo': unknown option 'use_flwo' \(did you mean 'use_flow'\?\)"
    with pytest.raises(ValueError, match=expected):
        build_dataset(opt)
