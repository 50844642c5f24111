"""scripts/check_dataset.py: every problem of a dataset at once, for every layout, from flags or an option file."""
import glob
import os
import re
import shutil
from os import path as osp

import cv2
import numpy as np
import pytest
import yaml

import deblurzoo  # noqa: F401  (registers the datasets; patches BasicSR first)
from data_factory import (damage_file, load_script, make_dvd_tree, make_gopro_lmdb, make_gopro_tree, make_hide_tree,
                          make_realblur_tree, make_reds_tree)

SEQS = ('GOPR0001_00_00', 'GOPR0002_00_00', 'GOPR0003_00_00')


@pytest.fixture(scope='module')
def script():
    return load_script('check_dataset')


def _run(script, capsys, *argv):
    """(exit status, stdout) of the script."""
    status = script.main([str(arg) for arg in argv])
    return status, capsys.readouterr().out


def _frames(root, seq, folder, split='train'):
    return sorted(glob.glob(osp.join(root, split, seq, folder, '*')))


def _problems(out):
    """The problem lines of the report."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith('problems ('))
    count = int(re.search(r'problems \((\d+)\)', lines[start]).group(1))
    return [line.strip() for line in lines[start + 1:start + 1 + count]]


def test_a_clean_tree_passes(script, capsys, tmp_path):
    root = make_gopro_tree(str(tmp_path / 'G'), seqs=SEQS[:2], frames=2, with_flow=True)
    status, out = _run(script, capsys, '--type', 'GoProDataset', '--dataroot', root, '--split', 'train', '--gt-size',
                       32, '--use-flow')
    assert status == 0, out
    assert "GoProDataset (phase train, " in out and ': 12 files' in out  # 4 samples: blur, sharp, flow
    assert out.rstrip().endswith('1 dataset(s): 0 problem(s), 0 note(s): OK')


@pytest.mark.parametrize('workers', [0, 2])
def test_every_problem_of_a_gopro_tree_at_once(script, capsys, tmp_path, workers):
    root = make_gopro_tree(str(tmp_path / 'G'), seqs=SEQS, frames=3, with_flow=True)
    one, two, three = ({folder: _frames(root, seq, folder) for folder in ('blur', 'sharp', 'flow')} for seq in SEQS)
    damage_file(one['blur'][0], 'empty')
    damage_file(one['blur'][1], 'truncate')
    damage_file(one['sharp'][2], 'garble')
    os.remove(two['sharp'][0])  # unpaired frames in two sequences: both reported, not only the first
    os.remove(three['blur'][2])
    cv2.imwrite(three['sharp'][0], cv2.imread(three['sharp'][0])[:30])  # size mismatch
    cv2.imwrite(three['blur'][1], cv2.imread(three['blur'][1], cv2.IMREAD_GRAYSCALE))  # notes
    cv2.imwrite(three['sharp'][1], cv2.imread(three['sharp'][1]).astype(np.uint16) * 257)
    os.remove(two['flow'][1])  # a missing flow
    nan_flow = two['flow'][2][:-4] + '.npy'
    os.remove(two['flow'][2])
    np.save(nan_flow, np.full((40, 48, 4), np.nan, np.float32))

    status, out = _run(script, capsys, '--type', 'GoProDataset', '--dataroot', root, '--split', 'train', '--gt-size',
                       32, '--use-flow', '--workers', workers)
    assert status == 1
    problems = _problems(out)
    expected = [
        f'{two["blur"][0]}: unpaired frame of sequence {SEQS[1]}: no sharp frame',
        f'{three["sharp"][2]}: unpaired frame of sequence {SEQS[2]}: no blur frame',
        f'{two["flow"][1]}: no flow file (.png or .npy)',
        f'{one["blur"][0]}: empty file (0 bytes)',
        f'{one["blur"][1]}: truncated PNG',
        f'{one["sharp"][2]}: cannot decode the image',
        f'size mismatch: {three["blur"][0]} is 40x48 (h x w) but {three["sharp"][0]} is 30x48',
        f'{nan_flow}: 1920 pixel(s) have non-finite flow values',
    ]
    for start in expected:
        assert sum(line.startswith(start) for line in problems) == 1, (start, problems)
    assert len(problems) == len(expected), problems
    assert f'grayscale (replicated to 3 channels): {three["blur"][1]}' in out
    assert f'16-bit (read at full precision: divided by 65535): {three["sharp"][1]}' in out
    assert out.rstrip().endswith(f'{len(expected)} problem(s), 2 note(s): fix the problems before training')


def test_video_layouts_list_every_short_sequence_and_bad_frame(script, capsys, tmp_path):
    root = make_dvd_tree(str(tmp_path / 'dvd'), seqs=('IMG_0001', 'IMG_0002', 'IMG_0003'),
                         frames={'IMG_0001': 2, 'IMG_0002': 3, 'IMG_0003': 5})
    bad = damage_file(sorted(glob.glob(osp.join(root, 'IMG_0003', 'GT', '*.jpg')))[4], 'truncate')
    status, out = _run(script, capsys, '--type', 'DVDDataset', '--dataroot', root, '--num-frame', 4, '--set',
                       'partition=all')
    assert status == 1
    assert _problems(out) == [
        f'sequence IMG_0001 of {root}: 2 frame(s), fewer than num_frame 4',
        f'sequence IMG_0002 of {root}: 3 frame(s), fewer than num_frame 4',
        f'{bad}: truncated JPEG: it ends before its end-of-image marker (FFD9) after {osp.getsize(bad)} bytes (an '
        'interrupted copy or download?); copy it again or leave it out',
    ]
    reds = make_reds_tree(str(tmp_path / 'REDS'), clips=('000', '001'), num_frames=2)
    shutil.rmtree(osp.join(reds, 'train_sharp', '001'))
    status, out = _run(script, capsys, '--type', 'REDSDeblurTestDataset', '--dataroot-lq',
                       osp.join(reds, 'train_blur'), '--dataroot-gt', osp.join(reds, 'train_sharp'))
    assert status == 1
    assert _problems(out) == [f"{osp.join(reds, 'train_blur', '001')}: clip not in {osp.join(reds, 'train_sharp')}"]


def test_paired_test_sets(script, capsys, tmp_path):
    hide = make_hide_tree(str(tmp_path / 'HIDE_dataset'))
    orphans = [osp.join(hide, 'GT', f'{name}.png') for name in ('10fromGOPR1088', '5fromGOPR1096')]
    for path in orphans:
        os.remove(path)
    status, out = _run(script, capsys, '--type', 'HIDEDataset', '--dataroot', hide)
    assert status == 1 and len(_problems(out)) == 2
    assert all(f'without its sharp partner {path}' in out for path in orphans)
    realblur = make_realblur_tree(str(tmp_path / 'RealBlur'))
    status, out = _run(script, capsys, '--type', 'RealBlurDataset', '--dataroot', realblur, '--set', 'variant=J')
    assert status == 0, out


def test_lmdb_keys_missing_from_the_database(script, capsys, tmp_path):
    root = make_gopro_tree(str(tmp_path / 'G'), seqs=SEQS[:1], frames=2)
    lmdbs = make_gopro_lmdb(root, 'train', str(tmp_path / 'lmdb'))
    for lmdb in lmdbs.values():
        with open(osp.join(lmdb, 'meta_info.txt'), 'a') as f:
            f.write(f'{SEQS[0]}/999999.png (40,48,3) 1\n')
    status, out = _run(script, capsys, '--type', 'GoProDataset', '--lmdb', '--dataroot-lq', lmdbs['blur'],
                       '--dataroot-gt', lmdbs['sharp'])
    assert status == 1
    assert _problems(out) == [f"key '{SEQS[0]}/999999' not found in the {role} lmdb {lmdbs[folder]}"
                              for role, folder in (('lq', 'blur'), ('gt', 'sharp'))]


def test_an_option_file_checks_each_of_its_datasets(script, capsys, tmp_path):
    root = make_gopro_tree(str(tmp_path / 'G'), seqs=SEQS[:1], frames=2)
    make_gopro_tree(root, split='test', seqs=SEQS[1:2], frames=2)
    damage_file(_frames(root, SEQS[1], 'sharp', 'test')[0], 'truncate')
    datasets = {
        'train': {'name': 'gopro', 'type': 'GoProDataset', 'dataroot': root, 'split': 'train', 'gt_size': 16,
                  'check_sizes': True, 'batch_size_per_gpu': 4, 'io_backend': {'type': 'disk'}},
        'val_1': {'name': 'gopro_test', 'type': 'GoProDataset', 'dataroot': root, 'split': 'test'},
        'val_2': {'name': 'other', 'type': 'PairedImageDataset', 'dataroot_gt': root},
        'val_3': {'name': 'missing', 'type': 'GoProDataset', 'dataroot': str(tmp_path / 'nowhere')},
    }
    option_file = tmp_path / 'train_x.yml'
    option_file.write_text(yaml.safe_dump({'name': 'x', 'datasets': datasets}))
    status, out = _run(script, capsys, '-opt', option_file)
    assert status == 1
    assert f"GoProDataset 'gopro' (phase train, {root}): 4 files" in out
    assert f"GoProDataset 'gopro_test' (phase val, {root}): 4 files" in out
    assert f'{_frames(root, SEQS[1], "sharp", "test")[0]}: truncated PNG' in out
    assert "not a deblurzoo dataset, not checked: PairedImageDataset 'other'" in out
    assert f'GoPro dataroot not found: {tmp_path / "nowhere"}' in out
    assert out.rstrip().endswith('4 dataset(s): 2 problem(s), 1 note(s): fix the problems before training')


@pytest.mark.parametrize('argv, message', [
    ([], 'give -opt OPTION_FILE and/or --type'),
    (['--type', 'NoSuchDataset'], "invalid choice: 'NoSuchDataset'"),
    (['--type', 'GoProDataset'], 'GoProDataset needs its data: --dataroot'),
    (['--type', 'DVDDataset', '--dataroot', 'x'], 'DVDDataset needs --num-frame'),
    (['--type', 'DVDTestDataset', '--dataroot', 'x', '--num-frame', '3'], "unknown option 'num_frame'"),
    (['--type', 'GoProDataset', '--dataroot', 'x', '--set', 'oops'], '--set expects KEY=VALUE'),
    (['-opt', 'no_such_file.yml'], 'option file not found: no_such_file.yml'),
])
def test_usage_errors_exit_with_2(script, capsys, argv, message):
    with pytest.raises(SystemExit) as caught:
        script.main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('content, message', [
    (b'name: x\ndatasets:\n  train: {type: GoProDataset}\ndatasets: {}\n',
     "line 4, column 1: duplicate key 'datasets' (first on line 2)"),
    (b'name: x\n# caf\xe9\ndatasets: {}\n', 'not UTF-8 text (byte 0xe9 on line 2)'),
    (b'name: [x\n', 'line 2, column 1'),
    (b'- a list\n', 'the top level must be a mapping'),
    (b'name: x\n', 'has no datasets: section'),
    (b'name: x\ndatasets:\n  train: GoProDataset\n', "datasets.train must be a mapping of dataset options, got 'Go"),
])
def test_a_bad_option_file_is_named_with_its_cause(script, capsys, tmp_path, content, message):
    """The option file is read as the entry points read it: a duplicate key is refused (PyYAML would silently keep
    the last one and check another dataset than the trainer would), and every error names the file."""
    option_file = tmp_path / 'train_bad.yml'
    option_file.write_bytes(content)
    with pytest.raises(SystemExit) as caught:
        script.main(['-opt', str(option_file)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert 'train_bad.yml' in err and message in err
