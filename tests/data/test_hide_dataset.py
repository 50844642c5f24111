"""HIDEDataset: the HIDE_dataset layout, subsets, list selection, the training crop and its validation errors."""
import os
import re
import shutil
from os import path as osp

import cv2
import pytest
import torch

import deblurzoo  # noqa: F401  (registers HIDEDataset)
from basicsr.data import build_dataset
from data_factory import assert_paired_crops, read_rgb, HIDE_NAMES, make_hide_tree
from deblurzoo.data.hide_dataset import HIDEDataset

CLOSE, LONG = HIDE_NAMES['test-close-ups'], HIDE_NAMES['test-long-shot']
TEST_KEYS = [f'test-close-ups/{n}' for n in sorted(CLOSE)] + [f'test-long-shot/{n}' for n in sorted(LONG)]


def _opt(root, **kw):
    opt = {'name': 'hide', 'type': 'HIDEDataset', 'dataroot': root, 'phase': 'val', 'io_backend': {'type': 'disk'}}
    opt.update(kw)
    return opt


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return make_hide_tree(str(tmp_path_factory.mktemp('hide') / 'HIDE_dataset'))


@pytest.fixture
def copy_tree(tree, tmp_path):
    """A private copy, for tests that break it."""
    return shutil.copytree(tree, str(tmp_path / 'HIDE_dataset'))


def test_test_split_loads_every_pair(tree):
    dataset = build_dataset(_opt(tree))  # phase val -> split test, subset all
    assert isinstance(dataset, HIDEDataset) and len(dataset) == 4
    assert [s['key'] for s in dataset.samples] == TEST_KEYS
    for i, key in enumerate(TEST_KEYS):
        sample = dataset[i]
        folder, name = key.split('/')
        assert sample['key'] == key
        assert sample['lq_path'] == osp.join(tree, 'test', folder, f'{name}.png')
        assert sample['gt_path'] == osp.join(tree, 'GT', f'{name}.png')
        assert sample['lq'].shape == sample['gt'].shape == (3, 40, 48) and sample['lq'].dtype == torch.float32
        assert torch.equal(sample['lq'], read_rgb(sample['lq_path']))
        assert torch.equal(sample['gt'], read_rgb(sample['gt_path']))
        assert not torch.equal(sample['lq'], sample['gt'])  # the blurry image is not its sharp partner


@pytest.mark.parametrize('subset,folder', [('close-ups', 'test-close-ups'), ('long-shot', 'test-long-shot')])
def test_subset(tree, subset, folder):
    dataset = HIDEDataset(_opt(tree, subset=subset))
    assert [s['key'] for s in dataset.samples] == [k for k in TEST_KEYS if k.startswith(f'{folder}/')]


def test_train_split_crop(tree):
    dataset = HIDEDataset(_opt(tree, phase='train', gt_size=16))  # split from phase
    assert [s['key'] for s in dataset.samples] == sorted(HIDE_NAMES['train'])
    assert dataset.samples[0]['lq_path'] == osp.join(tree, 'train', f"{sorted(HIDE_NAMES['train'])[0]}.png")
    assert_paired_crops(dataset, 0, 16)
    augmented = HIDEDataset(_opt(tree, phase='train', gt_size=16, use_hflip=True, use_rot=True))
    assert augmented[1]['lq'].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="'gt_size'"):
        HIDEDataset(_opt(tree, phase='train'))


def test_meta_info_file_selects_and_orders(tree, tmp_path):
    # the release's test.txt (file names) selects the whole test split
    official = HIDEDataset(_opt(tree, meta_info_file=osp.join(tree, 'test.txt')))
    assert sorted(s['key'] for s in official.samples) == TEST_KEYS
    # ... and, with a subset, the subset's names only
    close = HIDEDataset(_opt(tree, meta_info_file=osp.join(tree, 'test.txt'), subset='close-ups'))
    assert sorted(s['key'] for s in close.samples) == TEST_KEYS[:2]
    # a custom list: file names or keys, in list order
    meta = tmp_path / 'meta.txt'
    meta.write_text(f'# two\n{LONG[1]}.png\n\ntest-close-ups/{CLOSE[0]}\n')
    picked = HIDEDataset(_opt(tree, meta_info_file=str(meta)))
    assert [s['key'] for s in picked.samples] == [f'test-long-shot/{LONG[1]}', f'test-close-ups/{CLOSE[0]}']
    train = HIDEDataset(_opt(tree, split='train', meta_info_file=osp.join(tree, 'train.txt')))
    assert [s['key'] for s in train.samples] == list(HIDE_NAMES['train'])


def test_check_sizes(copy_tree):
    gt = osp.join(copy_tree, 'GT', f'{CLOSE[0]}.png')
    cv2.imwrite(gt, cv2.imread(gt)[:30])
    lq = osp.join(copy_tree, 'test', 'test-close-ups', f'{CLOSE[0]}.png')
    with pytest.raises(ValueError, match=f'size mismatch: {re.escape(lq)} is 40x48 .* but {re.escape(gt)} is 30x48'):
        HIDEDataset(_opt(copy_tree, check_sizes=True))


# ---------------------------------------------------------------- validation errors


def test_missing_root_and_folders(copy_tree, tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='HIDE dataroot not found: ' + re.escape(missing)):
        HIDEDataset(_opt(missing))
    long_dir = osp.join(copy_tree, 'test', 'test-long-shot')
    shutil.rmtree(long_dir)
    with pytest.raises(FileNotFoundError, match='HIDE test folder not found: ' + re.escape(long_dir)):
        HIDEDataset(_opt(copy_tree, subset='close-ups'))
    shutil.rmtree(osp.join(copy_tree, 'GT'))
    with pytest.raises(FileNotFoundError, match='HIDE sharp folder not found: ' + re.escape(osp.join(copy_tree, 'GT'))):
        HIDEDataset(_opt(copy_tree, split='train'))
    with pytest.raises(ValueError, match="needs the option 'dataroot'"):
        HIDEDataset(_opt(None))


def test_blurry_image_without_sharp_partner(copy_tree):
    gt = osp.join(copy_tree, 'GT', f'{LONG[0]}.png')
    os.remove(gt)
    lq = osp.join(copy_tree, 'test', 'test-long-shot', f'{LONG[0]}.png')
    match = '1 HIDE blurry image\\(s\\) have no sharp partner.*' + re.escape(f'{lq} (expected {gt})')
    with pytest.raises(FileNotFoundError, match=match):
        HIDEDataset(_opt(copy_tree))
    assert len(HIDEDataset(_opt(copy_tree, subset='close-ups'))) == 2  # the other subset is fine


def test_empty_set(copy_tree):
    close_dir = osp.join(copy_tree, 'test', 'test-close-ups')
    for name in os.listdir(close_dir):
        os.remove(osp.join(close_dir, name))
    with pytest.raises(FileNotFoundError, match='no HIDE test images in ' + re.escape(close_dir)):
        HIDEDataset(_opt(copy_tree, subset='close-ups'))


def test_list_errors(tree, tmp_path):
    missing = str(tmp_path / 'test.txt')
    with pytest.raises(FileNotFoundError, match='meta info file not found: ' + re.escape(missing)):
        HIDEDataset(_opt(tree, meta_info_file=missing))
    meta = tmp_path / 'meta.txt'
    meta.write_text(f'{CLOSE[0]}.png\n99fromGOPR9999.png\n')
    match = f'1 image\\(s\\) of meta_info_file {re.escape(str(meta))} are not in the HIDE test split.*99fromGOPR9999'
    with pytest.raises(ValueError, match=match):
        HIDEDataset(_opt(tree, meta_info_file=str(meta)))
    meta.write_text(f'{HIDE_NAMES["train"][0]}.png\n')  # a train name: not in the test split either
    with pytest.raises(ValueError, match=f'not in the HIDE test split.*{HIDE_NAMES["train"][0]}'):
        HIDEDataset(_opt(tree, meta_info_file=str(meta)))
    meta.write_text(f'{LONG[0]}.png\n')  # only names of the other subset: an empty set
    with pytest.raises(FileNotFoundError, match=f'no HIDE test images listed in meta_info_file {re.escape(str(meta))}'):
        HIDEDataset(_opt(tree, meta_info_file=str(meta), subset='close-ups'))


def test_option_errors(tree):
    with pytest.raises(ValueError, match="HIDE subset must be 'all' or .*close-ups, long-shot; got 'close'"):
        HIDEDataset(_opt(tree, subset='close'))
    with pytest.raises(ValueError, match="got 'close-ups' with split 'train'"):
        HIDEDataset(_opt(tree, split='train', subset='close-ups'))
    with pytest.raises(ValueError, match="HIDE split must be one of train, test, got 'val'"):
        HIDEDataset(_opt(tree, split='val'))
    with pytest.raises(ValueError, match="io_backend type 'lmdb' is not supported by HIDEDataset"):
        HIDEDataset(_opt(tree, io_backend={'type': 'lmdb'}))


def test_unknown_option_key_is_named_with_a_suggestion(tree):
    expected = r"HIDEDataset 'hide': unknown option 'subsets' \(did you mean 'subset'\?\)"
    with pytest.raises(ValueError, match=expected):
        build_dataset(_opt(tree, subsets='all'))
