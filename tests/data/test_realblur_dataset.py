"""RealBlurDataset: the RealBlur layout and list files, J/R variants, the training crop and its validation errors."""
import os
import re
import shutil
from os import path as osp

import cv2
import pytest
import torch

import deblurzoo  # noqa: F401  (registers RealBlurDataset)
from basicsr.data import build_dataset
from data_factory import assert_paired_crops, read_rgb, REALBLUR_FOLDERS, make_realblur_tree
from deblurzoo.data.realblur_dataset import RealBlurDataset

J, R = REALBLUR_FOLDERS['J'], REALBLUR_FOLDERS['R']
TEST_KEYS = ['scene230/blur_1', 'scene230/blur_2', 'scene050/blur_1', 'scene050/blur_2']  # list order


def _opt(root, **kw):
    opt = {'name': 'realblur', 'type': 'RealBlurDataset', 'dataroot': root, 'phase': 'val',
           'io_backend': {'type': 'disk'}}
    opt.update(kw)
    return opt


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('realblur') / 'RealBlur')
    make_realblur_tree(root, 'J')
    return make_realblur_tree(root, 'R')


@pytest.fixture
def copy_tree(tree, tmp_path):
    """A private copy, for tests that break it."""
    return shutil.copytree(tree, str(tmp_path / 'RealBlur'))


@pytest.mark.parametrize('variant,folder', [('J', J), ('R', R)])
def test_test_split_loads_listed_pairs(tree, variant, folder):
    dataset = build_dataset(_opt(tree, variant=variant))  # phase val -> split test
    assert isinstance(dataset, RealBlurDataset) and len(dataset) == 4
    assert [s['key'] for s in dataset.samples] == TEST_KEYS  # in list order
    for i, key in enumerate(TEST_KEYS):
        sample = dataset[i]
        scene, name = key.split('/')
        n = name.split('_')[1]
        assert sample['key'] == key
        assert sample['lq_path'] == osp.join(tree, folder, scene, 'blur', f'blur_{n}.png')
        assert sample['gt_path'] == osp.join(tree, folder, scene, 'gt', f'gt_{n}.png')
        assert sample['lq'].shape == sample['gt'].shape == (3, 40, 48) and sample['lq'].dtype == torch.float32
        assert torch.equal(sample['lq'], read_rgb(sample['lq_path']))
        assert torch.equal(sample['gt'], read_rgb(sample['gt_path']))
        assert not torch.equal(sample['lq'], sample['gt'])


def test_variants_differ(tree):
    j, r = RealBlurDataset(_opt(tree)), RealBlurDataset(_opt(tree, variant='R'))  # variant J by default
    assert j.samples[0]['lq_path'].startswith(osp.join(tree, J, ''))
    assert not torch.equal(j[0]['lq'], r[0]['lq'])


def test_train_split_crop(tree):
    dataset = RealBlurDataset(_opt(tree, phase='train', gt_size=16, variant='R'))  # split from phase
    assert [s['key'] for s in dataset.samples] == ['scene003/blur_1', 'scene003/blur_2']
    assert_paired_crops(dataset, 1, 16)
    augmented = RealBlurDataset(_opt(tree, phase='train', gt_size=16, use_hflip=True, use_rot=True))
    assert augmented[0]['gt'].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="'gt_size'"):
        RealBlurDataset(_opt(tree, phase='train'))


def test_meta_info_file_replaces_the_list(tree, tmp_path):
    lines = open(osp.join(tree, 'RealBlur_J_test_list.txt')).readlines()
    meta = tmp_path / 'subset.txt'
    meta.write_text('# a subset\n' + lines[3] + '\n' + lines[0])
    dataset = RealBlurDataset(_opt(tree, meta_info_file=str(meta)))
    assert [s['key'] for s in dataset.samples] == [TEST_KEYS[3], TEST_KEYS[0]]


def test_check_sizes(copy_tree):
    gt = osp.join(copy_tree, J, 'scene050', 'gt', 'gt_2.png')
    cv2.imwrite(gt, cv2.imread(gt)[:, :20])
    lq = osp.join(copy_tree, J, 'scene050', 'blur', 'blur_2.png')
    with pytest.raises(ValueError, match=f'size mismatch: {re.escape(lq)} is 40x48 .* but {re.escape(gt)} is 40x20'):
        RealBlurDataset(_opt(copy_tree, check_sizes=True))


# ---------------------------------------------------------------- validation errors


def test_missing_root_folder_and_list(copy_tree, tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='RealBlur dataroot not found: ' + re.escape(missing)):
        RealBlurDataset(_opt(missing))
    listed = osp.join(copy_tree, 'RealBlur_R_test_list.txt')
    os.remove(listed)
    with pytest.raises(FileNotFoundError, match='RealBlur list file not found: ' + re.escape(listed)):
        RealBlurDataset(_opt(copy_tree, variant='R'))
    other = str(tmp_path / 'mine.txt')
    with pytest.raises(FileNotFoundError, match='RealBlur list file not found: ' + re.escape(other)):
        RealBlurDataset(_opt(copy_tree, meta_info_file=other))
    shutil.rmtree(osp.join(copy_tree, R))
    with pytest.raises(FileNotFoundError, match='RealBlur-R folder not found: ' + re.escape(osp.join(copy_tree, R))):
        RealBlurDataset(_opt(copy_tree, variant='R', split='train'))
    with pytest.raises(ValueError, match="needs the option 'dataroot'"):
        RealBlurDataset(_opt(None))


def test_listed_images_missing(copy_tree):
    gt = osp.join(copy_tree, J, 'scene050', 'gt', 'gt_1.png')
    lq = osp.join(copy_tree, J, 'scene050', 'blur', 'blur_1.png')
    list_file = osp.join(copy_tree, 'RealBlur_J_test_list.txt')
    os.remove(gt)
    match = (f'1 blurry image\\(s\\) listed in {re.escape(list_file)} have no sharp partner: '
             + re.escape(f'{lq} (expected {gt}, line 3)'))
    with pytest.raises(FileNotFoundError, match=match):
        RealBlurDataset(_opt(copy_tree))
    os.remove(lq)
    with pytest.raises(FileNotFoundError, match=f'1 blurry image\\(s\\) listed in .* not found: {re.escape(lq)}'):
        RealBlurDataset(_opt(copy_tree))


def test_list_content_errors(tree, tmp_path):
    lines = open(osp.join(tree, 'RealBlur_J_test_list.txt')).readlines()
    meta = tmp_path / 'list.txt'
    opt = _opt(tree, meta_info_file=str(meta))
    gt, blur = lines[0].split()
    meta.write_text(f'{blur} {gt}\n')  # swapped
    with pytest.raises(ValueError, match=re.escape(f'{meta}:1: the paths are in the wrong order')):
        RealBlurDataset(opt)
    meta.write_text(lines[0] + f'{blur}\n')  # one path
    with pytest.raises(ValueError, match=re.escape(f"{meta}:2: expected '<gt path> <blur path>'")):
        RealBlurDataset(opt)
    meta.write_text(lines[0] + lines[1] + lines[0])  # listed twice
    with pytest.raises(ValueError, match='lines 1 and 3 both list the blurry image scene230/blur_1'):
        RealBlurDataset(opt)
    meta.write_text('# nothing\n\n')  # empty
    with pytest.raises(ValueError, match=f'RealBlur list file {re.escape(str(meta))} lists no pairs'):
        RealBlurDataset(opt)
    # a list of the other variant
    r_lines = open(osp.join(tree, 'RealBlur_R_test_list.txt')).readlines()
    meta.write_text(r_lines[0])
    with pytest.raises(ValueError, match=f'1 pair\\(s\\) of .* are not in the RealBlur-J folder {J}.*line 1: '
                       + re.escape(r_lines[0].split()[1])):
        RealBlurDataset(opt)


def test_option_errors(tree):
    with pytest.raises(ValueError, match="RealBlur variant must be one of J, R, got 'Tele'"):
        RealBlurDataset(_opt(tree, variant='Tele'))
    with pytest.raises(ValueError, match="RealBlur split must be one of train, test, got 'val'"):
        RealBlurDataset(_opt(tree, split='val'))
    with pytest.raises(ValueError, match="io_backend type 'lmdb' is not supported by RealBlurDataset"):
        RealBlurDataset(_opt(tree, io_backend={'type': 'lmdb'}))


def test_unknown_option_key_is_named_with_a_suggestion(tree):
    expected = r"RealBlurDataset 'realblur': unknown option 'varaint' \(did you mean 'variant'\?\)"
    with pytest.raises(ValueError, match=expected):
        build_dataset(_opt(tree, varaint='R'))
