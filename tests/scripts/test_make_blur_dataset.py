"""scripts/make_blur_dataset.py: each layout it writes loads with the matching registered dataset; resumable, atomic,
reproducible."""
import dataclasses
import json
import os

import cv2
import numpy as np
import pytest

import deblurzoo  # noqa: F401  (registers the datasets)
from basicsr.data import build_dataset
from data_factory import load_script

mbd = load_script('make_blur_dataset')
FRAMES = 11


def texture(h, w, seed):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 1.5)
    return np.rint((img - img.min()) / (img.max() - img.min()) * 210 + 20).astype(np.uint8)


@pytest.fixture(scope='module')
def footage(tmp_path_factory):
    """A folder of frames panning 2 px/frame, and a photo."""
    root = tmp_path_factory.mktemp('footage')
    base = texture(40, 56, 0)
    (root / 'clip').mkdir()
    for k in range(FRAMES):
        mat = np.float32([[1, 0, 2 * k], [0, 1, 0]])
        cv2.imwrite(str(root / 'clip' / f'{k:04d}.png'), cv2.warpAffine(base, mat, (56, 40),
                                                                      borderMode=cv2.BORDER_REFLECT))
    cv2.imwrite(str(root / 'photo.png'), texture(36, 44, 1))
    return root


def run(footage, out, *extra):
    return mbd.main([str(footage / 'clip'), str(footage / 'photo.png'), '--out', str(out), '--window', '3',
                     '--stride', '3', '--interp', '1', '--photo-frames', '3', *extra])


DATASETS = {  # layout: the registered dataset reading it
    'gopro': lambda out: dict(type='GoProDataset', dataroot=out, split='train'),
    'reds': lambda out: dict(type='REDSDeblurDataset', dataroot_lq=os.path.join(out, 'train_blur'),
                             dataroot_gt=os.path.join(out, 'train_sharp'), num_frame=3),
    'dvd': lambda out: dict(type='DVDDataset', dataroot=out, partition='all', num_frame=3),
}


@pytest.mark.parametrize('layout', sorted(DATASETS))
def test_each_layout_loads_with_its_dataset(footage, tmp_path, layout):
    out = tmp_path / layout
    assert run(footage, out, '--layout', layout) == 0
    with open(out / 'manifest.json') as f:
        manifest = json.load(f)
    assert [(s['name'], s['pairs']) for s in manifest['sequences']] == [('clip_00', 3), ('photo', 3)]
    assert not [p for p in out.rglob('*') if '.tmp' in p.name]  # atomic writes leave nothing behind
    dataset = build_dataset(dict(DATASETS[layout](str(out)), name=layout, phase='val', io_backend={'type': 'disk'}))
    sample = dataset[0]
    lq, gt = sample['lq'], sample['gt']
    assert lq.shape == gt.shape and lq.shape[-3:] == (3, 40, 56)
    assert (lq - gt).abs().mean() > 0.01  # blurred


def test_video_pairs_are_window_averages_of_the_source(footage, tmp_path):
    out = tmp_path / 'gopro'
    assert run(footage, out, '--flow') == 0
    seq = out / 'train' / 'clip_00'
    cfg = dataclasses.replace(mbd.PLAIN, video_interp=1)
    frames = [cv2.imread(str(footage / 'clip' / f'{k:04d}.png')) for k in range(FRAMES)]
    for k, first in enumerate((0, 3, 6)):
        sharp = cv2.imread(str(seq / 'sharp' / f'{k:06d}.png'))
        assert np.array_equal(sharp, frames[first + 1])  # the window's centre frame
        blur = cv2.imread(str(seq / 'blur' / f'{k:06d}.png'))
        lq, _, _ = mbd.window_pair(np.random.default_rng(0), frames[first:first + 3], cfg, flow=False)
        assert np.array_equal(blur, mbd.to_uint8(lq))  # GoPro's model by default: average at gamma 2.2, no noise
    assert sorted(os.listdir(seq / 'flow')) == sorted(os.listdir(seq / 'blur'))


def test_resumes_skipping_finished_files_and_rewrites_on_new_settings(footage, tmp_path, capsys):
    out = tmp_path / 'gopro'
    assert run(footage, out) == 0
    blur = out / 'train' / 'photo' / 'blur' / '000001.png'
    first = blur.read_bytes()
    blur.unlink()  # an interrupted build: one file missing
    stamp = (out / 'train' / 'photo' / 'blur' / '000000.png').stat().st_mtime_ns
    capsys.readouterr()
    assert run(footage, out) == 0
    assert '(1 written' in capsys.readouterr().out
    assert blur.read_bytes() == first  # reproducible: the same pair again
    assert (out / 'train' / 'photo' / 'blur' / '000000.png').stat().st_mtime_ns == stamp  # finished: kept
    assert run(footage, out, '--prob-noise', '1', '--noise-read', '0.01', '0.02') == 0  # other settings: rewritten
    assert '(6 written' in capsys.readouterr().out
    assert blur.read_bytes() != first


def test_a_set_built_before_an_option_existed_resumes(footage, tmp_path, capsys):
    out = tmp_path / 'gopro'
    assert run(footage, out) == 0
    settings = out / 'build_settings.json'
    record = json.loads(settings.read_text())
    del record['config']['shake_anchor']  # the record of a version without the option (its default: mean)
    settings.write_text(json.dumps(record))
    capsys.readouterr()
    assert run(footage, out) == 0
    assert '(0 written' in capsys.readouterr().out
    record['config']['prob_noise'] = 0.5  # a setting that differs is still a rebuild
    settings.write_text(json.dumps(record))
    assert run(footage, out) == 0
    assert '(0 written' not in capsys.readouterr().out
    settings.write_text('{not json')  # an unreadable record: rebuilt, never trusted
    assert run(footage, out) == 0
    assert '(0 written' not in capsys.readouterr().out
    assert run(footage, out, '--shake-anchor', 'middle') == 0  # a new option set otherwise than its default: rebuilt
    assert '(0 written' not in capsys.readouterr().out


def test_synthesis_options_reach_the_build(footage, tmp_path):
    out = tmp_path / 'gopro'
    assert run(footage, out, '--shake-anchor', 'middle', '--prob-noise', '0') == 0
    with open(out / 'build_settings.json') as f:
        config = json.load(f)['config']
    assert config['shake_anchor'] == 'middle' and config['prob_noise'] == 0
    with pytest.raises(SystemExit):
        run(footage, tmp_path / 'bad', '--shake-anchor', 'centre')


def tree(root):
    """{relative path: bytes} of every file below ``root``."""
    return {os.path.relpath(os.path.join(d, n), root): open(os.path.join(d, n), 'rb').read()
            for d, _, names in os.walk(root) for n in names}


def test_never_writes_among_the_users_files(footage, tmp_path, capsys):
    before = tree(footage)
    for out in (footage / 'clip', footage / 'clip' / 'pairs', footage):  # a source, inside one, holding one
        assert run(footage, out) == 1
        assert 'overlap' in capsys.readouterr().err
    (tmp_path / 'link').symlink_to(footage / 'clip')  # another name of a source
    assert run(footage, tmp_path / 'link' / 'pairs') == 1
    assert 'overlap' in capsys.readouterr().err
    assert tree(footage) == before
    mine = tmp_path / 'mine'  # a user's folder, e.g. a dataset of their own in the GoPro layout
    (mine / 'train' / 'clip_00' / 'blur').mkdir(parents=True)
    (mine / 'train' / 'clip_00' / 'blur' / '000000.png').write_bytes(b'theirs')
    (mine / 'manifest.json').write_text('{}')
    for extra in ((), ('--force',)):
        assert run(footage, mine, *extra) == 1
        assert 'no deblurzoo dataset build wrote' in capsys.readouterr().err
    assert tree(mine) == {os.path.join('train', 'clip_00', 'blur', '000000.png'): b'theirs', 'manifest.json': b'{}'}
    (tmp_path / 'file').write_text('x')
    assert run(footage, tmp_path / 'file') == 1
    assert 'is a file' in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    assert run(footage, tmp_path / 'empty') == 0  # a new or empty folder, or an earlier build: fine
    assert run(footage, tmp_path / 'empty', '--force') == 0


def test_bad_arguments_are_clear_errors(footage, tmp_path, capsys):
    assert run(footage, tmp_path / 'x', '--layout', 'reds', '--split', 'test') == 1
    assert "splits train, val, not test" in capsys.readouterr().err
    assert run(footage, tmp_path / 'y', '--layout', 'dvd', '--flow') == 1
    assert 'gopro layout only' in capsys.readouterr().err
    assert mbd.main([str(tmp_path / 'missing'), '--out', str(tmp_path / 'z')]) == 1
    assert 'dataroot not found' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mbd.main([str(footage / 'clip'), '--out', str(tmp_path / 'w'), '--window', '4'])
