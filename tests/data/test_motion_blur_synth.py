"""MotionBlurSynthDataset and its pipeline (deblurzoo/data/blur_synthesis.py, frame_averaging.py)."""
import cv2
import numpy as np
import pytest
import torch

import deblurzoo  # noqa: F401  (registers MotionBlurSynthDataset)
from basicsr.data import build_dataset
from deblurzoo.data import blur_synthesis as bs
from deblurzoo.data.frame_averaging import gamma_encode
from deblurzoo.data.motion_blur_synth_dataset import MotionBlurSynthDataset, clip_segments, scan_sources

CLEAN = dict(prob_noise=0.0, prob_jpeg=0.0, highlight_gain=(1.0, 1.0), prob_spatial=0.0)  # blur only


def texture(h, w, seed=0, channels=3):
    """A smooth random uint8 texture (values 20..230: nothing saturated) that optical flow can lock onto."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, channels)).astype(np.float32), (0, 0), 1.5)
    img = (img - img.min()) / (img.max() - img.min()) * 210 + 20
    return np.rint(img).astype(np.uint8)


def pan(img, dx, dy):
    mat = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, mat, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    """Two photos, a clip of 9 frames panning 1 px/frame to the right, and a clip with a scene cut after frame 4."""
    root = tmp_path_factory.mktemp('sources')
    cv2.imwrite(str(root / 'photo_a.png'), texture(56, 64, 1))
    cv2.imwrite(str(root / 'photo_b.jpg'), texture(60, 60, 2))
    base, other = texture(64, 80, 3), texture(64, 80, 4)
    (root / 'clips' / 'pan').mkdir(parents=True)
    (root / 'clips' / 'cut').mkdir(parents=True)
    for k in range(9):
        cv2.imwrite(str(root / 'clips' / 'pan' / f'{k}.png'), pan(base, k, 0))  # natural order: 0, 1, ..., 8
        cv2.imwrite(str(root / 'clips' / 'cut' / f'{k:03d}.png'), pan(base if k < 5 else other, k, 0))
    return root


def make(root, **kw):
    opt = dict(name='synth', type='MotionBlurSynthDataset', dataroot=str(root), phase='train', gt_size=32,
               crop_margin=4, use_flow=True, num_samples=50)
    opt.update(kw)
    return build_dataset(opt)


# ----------------------------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize('length', [0.0, 0.3, 3.0, 17.5])
def test_kernel_sums_to_one_centred_on_the_mean_position(length):
    pts = bs.random_trajectory(np.random.default_rng(7), length)
    assert bs.extent(pts) == pytest.approx(length, rel=1e-9, abs=1e-9)
    kernel = bs.trajectory_kernel(pts)
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1 and (kernel >= 0).all()
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    r = kernel.shape[0] // 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    assert (kernel * xx).sum() == pytest.approx(0.0, abs=1e-5) and (kernel * yy).sum() == pytest.approx(0.0, abs=1e-5)
    if length == 0:
        assert kernel.tolist() == [[1.0]]


def test_path_point_goes_by_path_length():
    pts = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 2.0]])  # an L of length 6
    assert np.allclose(bs.path_point(pts, 0.5), [3.0, 0.0]) and np.allclose(bs.path_point(pts, 5 / 6), [4.0, 1.0])
    assert np.allclose(bs.path_point(np.zeros((5, 2)), 0.5), [0.0, 0.0])


@pytest.mark.parametrize('length', [0.0, 3.0, 17.5])
def test_middle_anchor_puts_mid_exposure_at_the_origin(length):
    middle = bs.random_trajectory(np.random.default_rng(11), length, anchor='middle')
    mean = bs.random_trajectory(np.random.default_rng(11), length)
    shift = middle - mean
    assert np.allclose(shift, shift[0])  # the same walk (the same draws), only translated
    assert np.allclose(bs.path_point(middle, 0.5), 0.0, atol=1e-9)
    # the walk is at constant speed, so half-way along the path is half-way through the exposure: the kernel's mass
    # up to the origin is half of it (the densified points are uniform in time)
    dense = bs.densify(middle)
    if length:
        k = int(np.argmin(np.linalg.norm(dense, axis=1)))
        assert abs(k / (len(dense) - 1) - 0.5) < 0.02
        assert np.linalg.norm(shift[0]) > 0.01  # a random walk's centroid is not its middle


def test_shake_anchor_sets_where_the_sharp_target_sits():
    img = np.zeros((41, 41, 3), np.float32)
    img[20, 20] = 1.0  # a point of light: its blur is the exposure's path, the target shows where it is anchored
    sharp_pos = []
    for anchor in bs.ANCHORS:
        cfg = bs.SynthConfig(shake_length=(12.0, 12.0), prob_sharp=0.0, shake_anchor=anchor, gamma=(2.2, 2.2), **CLEAN)
        lq, gt, flow = bs.shake_pair(np.random.default_rng(5), img, cfg)
        assert np.array_equal(gt, img)  # the target is the sharp image itself, whichever the anchor
        rng = np.random.default_rng(5)
        bs._draw(rng, cfg)
        rng.uniform(size=2)
        pts = bs.random_trajectory(rng, 12.0, anchor=anchor)
        light = bs.to_linear(lq[..., 0], 2.2)  # CLEAN: gamma 2.2, no gain
        yy, xx = np.mgrid[-20:21, -20:21]
        centroid = np.array([(light * xx).sum(), (light * yy).sum()]) / light.sum()
        sharp_pos.append(centroid)
        assert np.allclose(flow[0, 0], np.concatenate([pts[0], pts[-1]]))
        if anchor == 'mean':
            assert np.allclose(centroid, 0.0, atol=0.05)
        else:  # the streak's centroid is where the mean anchor would be: the mean of the path, relative to its middle
            assert np.allclose(centroid, bs.densify(pts).mean(axis=0), atol=0.05)
    assert np.linalg.norm(sharp_pos[0] - sharp_pos[1]) > 0.1


def test_kernel_of_a_straight_line_and_the_blur_direction():
    pts = np.array([[-2.0, 0.0], [2.0, 0.0]])  # a horizontal streak of 4 px
    kernel = bs.trajectory_kernel(pts)
    assert kernel.shape == (5, 5) and np.allclose(kernel[[0, 1, 3, 4]], 0)
    assert np.allclose(kernel[2], np.array([2.5, 4, 4, 4, 2.5]) / 17)  # 17 points 0.25 px apart, bilinear
    dot = np.zeros((9, 9, 1), np.float32)
    dot[4, 4] = 1.0
    out = bs.blur(dot, kernel)  # the light of a point spreads along the streak, centred on it
    assert out.shape == dot.shape and np.allclose(out[4, 2:7, 0], kernel[2][::-1]) and out.sum() == pytest.approx(1)


# -------------------------------------------------------------------------------------------------- the physics
def test_zero_length_trajectory_gives_the_sharp_image_back_exactly():
    img = texture(24, 28).astype(np.float32) / 255.0
    cfg = bs.SynthConfig(shake_length=(0.0, 0.0), prob_sharp=0.0, **CLEAN)
    for seed in range(3):
        lq, gt, flow = bs.shake_pair(np.random.default_rng(seed), img, cfg)
        assert np.array_equal(lq, gt) and np.array_equal(gt, img) and not flow.any()
    lq, gt, _ = bs.shake_pair(np.random.default_rng(0), img, bs.SynthConfig(prob_sharp=1.0))  # all else on
    assert np.array_equal(lq, gt) and np.array_equal(gt, img)


@pytest.mark.parametrize('value', [0, 1, 37, 128, 254, 255])
def test_linear_light_averaging_of_constant_images_is_exact(value):
    frames = [np.full((20, 24, 3), value, np.uint8)] * 5
    cfg = bs.SynthConfig(prob_sharp=0.0, gamma=(1.7, 2.6), highlight_gain=(1.0, 4.0), prob_noise=0.0, prob_jpeg=0.0)
    for seed in range(3):
        # a saturated highlight (>= highlight_threshold) is brighter than the sensor's maximum: 255 in both
        expected = frames[0] if value < cfg.highlight_threshold * 255 else np.full_like(frames[0], 255)
        lq, gt, _ = bs.window_pair(np.random.default_rng(seed), frames, cfg, flow=False)
        assert np.array_equal(np.rint(lq * 255), expected) and np.array_equal(np.rint(gt * 255), expected)
        lq, gt, _ = bs.shake_pair(np.random.default_rng(seed), frames[0].astype(np.float32) / 255, cfg)
        assert np.array_equal(np.rint(lq * 255), expected) and np.array_equal(np.rint(gt * 255), expected)


def test_averaging_happens_in_linear_light():
    black, white = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)
    cfg = bs.SynthConfig(prob_sharp=0.0, gamma=(2.2, 2.2), video_interp=0, **CLEAN)
    lq, gt, _ = bs.window_pair(np.random.default_rng(0), [black, white, black], cfg, flow=False)
    expected = np.rint((1 / 3)**(1 / 2.2) * 255)  # 156: one third of the light, not a third of the 8-bit value (85)
    assert np.all(np.rint(lq * 255) == expected) and np.all(gt == 1.0)
    # the demo set's encoder agrees
    assert np.all(gamma_encode(np.full((2, 2), 1 / 3, np.float32)) == expected)


def test_highlights_clip_after_the_blur():
    img = np.zeros((9, 15, 3), np.float32)
    img[4, 6:9] = 1.0  # a saturated 3-px light on black
    streak = np.array([[-2.0, 0.0], [2.0, 0.0]])
    cfg = bs.SynthConfig(gamma=(2.2, 2.2))
    kernel = bs.trajectory_kernel(streak)

    def blurred(gain):
        lin = bs.boost_highlights(bs.to_linear(img, 2.2), img, cfg.highlight_threshold, gain)
        return bs.from_linear(bs.blur(lin, kernel), 2.2)

    plain, bright = blurred(1.0), blurred(8.0)
    assert plain[4, 7, 0] < 0.95  # without the gain the light smears into grey
    assert np.all(bright[4, 5:10] == 1.0)  # with it the streak stays clipped where >= 1/8 of the light lands
    assert np.all(bright[:4] == 0) and np.all(bright[5:] == 0)


def test_sensor_noise_is_signal_dependent_plus_read():
    shot, read = 4e-4, 2e-3
    for level in (0.05, 0.5):
        lin = np.full((300, 300, 1), level, np.float32)
        noisy = bs.sensor_noise(np.random.default_rng(0), lin, shot, read)
        assert noisy.std() == pytest.approx(np.sqrt(shot * level + read**2), rel=0.03)
        assert noisy.mean() == pytest.approx(level, abs=1e-3)


def test_jpeg_quality_matters():
    img = texture(32, 32).astype(np.float32) / 255
    low, high = bs.jpeg(img, 20), bs.jpeg(img, 95)
    assert np.abs(high - img).mean() < np.abs(low - img).mean()


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="'shake_length' must be a range"):
        bs.SynthConfig.from_options({'shake_length': [5, 1]})
    with pytest.raises(ValueError, match="'prob_jpeg' is a probability"):
        bs.SynthConfig.from_options({'prob_jpeg': 1.5})
    with pytest.raises(ValueError, match='jpeg_quality'):
        bs.SynthConfig.from_options({'jpeg_quality': [0, 90]})


# -------------------------------------------------------------------------------------------------- the dataset
def test_sources_and_scene_cuts(sources):
    photos, clips = scan_sources([str(sources)])
    assert [p.rsplit('/', 1)[1] for p in photos] == ['photo_a.png', 'photo_b.jpg']
    assert [len(c) for c in clips] == [9, 9] and clips[1][1].endswith('pan/1.png')  # natural order
    assert make(sources, dataroot=str(sources / 'clips' / 'pan')).photos == clips[1]  # a listed folder: photos
    assert clip_segments(clips[0], True) == [(0, 5), (5, 9)]  # the cut clip: no window straddles frame 4 | 5
    assert clip_segments(clips[1], True) == [(0, 9)]
    ds = make(sources)
    assert len(ds) == 50 and len(ds.items) == 2 + 18


def test_samples_are_reproducible_from_seed_and_index(sources):
    a, b = make(sources), make(sources)
    order = [7, 3, 19, 0, 7]
    first = {i: a[i] for i in order}
    for i in reversed(order):  # another instance, another order: the same samples
        s = b[i]
        for key in ('lq', 'gt', 'flow'):
            assert torch.equal(s[key], first[i][key]), (i, key)
        assert s['key'] == first[i]['key']
    assert not torch.equal(a[1]['lq'], a[21]['lq'])  # same source item (1 and 21 % 20), new blur
    c = make(sources, seed=1)
    assert any(not torch.equal(c[i]['lq'], first[i]['lq']) for i in (0, 3, 7))
    s = first[3]
    assert s['lq'].shape == s['gt'].shape == (3, 32, 32) and s['flow'].shape == (4, 32, 32)
    assert 0 <= s['lq'].min() and s['lq'].max() <= 1


def test_loader_workers_give_the_same_samples(sources):
    ds = make(sources, num_samples=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    direct = torch.stack([ds[i]['lq'] for i in range(8)])
    assert torch.equal(torch.cat([b['lq'] for b in batches]), direct)


def test_prob_photo_balances_photos_against_clip_frames(sources):
    """2 photos beside 18 clip frames: by default a photo is 1 sample in 10; prob_photo sets the share, reproducibly."""
    def photo_share(ds, n=400):
        return np.mean([ds._item(i, np.random.default_rng([ds.seed, i]))[0] == 'photo' for i in range(n)])

    assert photo_share(make(sources)) == pytest.approx(0.1)
    assert photo_share(make(sources, prob_photo=0.5)) == pytest.approx(0.5, abs=0.06)
    assert photo_share(make(sources, prob_photo=0.0)) == 0 and photo_share(make(sources, prob_photo=1.0)) == 1
    a, b = make(sources, prob_photo=0.5), make(sources, prob_photo=0.5)
    assert all(torch.equal(a[i]['lq'], b[i]['lq']) for i in (4, 11))
    photos_only = make(sources, dataroot=str(sources / 'photo_a.png'), prob_photo=0.0)  # no clips: photos anyway
    assert photos_only._item(3, np.random.default_rng(0))[0] == 'photo'
    for bad in (1.5, -0.1, 'half', True):
        with pytest.raises(ValueError, match=r'prob_photo must be a number >= 0 and <= 1 or None'):
            make(sources, prob_photo=bad)


def test_frame_cache_decodes_each_frame_once_and_keeps_to_its_budget(sources, monkeypatch):
    import deblurzoo.data.motion_blur_synth_dataset as mbsd
    decoded = []
    real = mbsd.read_frame
    monkeypatch.setattr(mbsd, 'read_frame', lambda path: decoded.append(path) or real(path))
    plain = make(sources, dataroot=str(sources / 'clips'), prob_video=1.0, video_window=[5, 5], frame_cache_mb=0)
    cached = make(sources, dataroot=str(sources / 'clips'), prob_video=1.0, video_window=[5, 5])
    decoded.clear()
    first = [plain[i] for i in range(11, 15)]  # the pan clip's frames 2..5: 5-frame windows fit
    assert len(decoded) > len(set(decoded))  # without the cache, overlapping windows decode frames again
    decoded.clear()
    for i, ref in zip(range(11, 15), first):
        s = cached[i]
        assert torch.equal(s['lq'], ref['lq']) and torch.equal(s['gt'], ref['gt'])  # the same samples
    assert len(decoded) == len(set(decoded))  # each frame decoded once
    frame = next(iter(cached.cache._items.values()))
    assert not frame.flags.writeable  # a caller cannot change what the next sample gets
    small = mbsd.FrameCache(2 * frame.nbytes)
    for path in sorted(set(decoded))[:4]:
        small.get(path, real)
    assert len(small) == 2 and small.nbytes == 2 * frame.nbytes  # least recently used dropped
    with pytest.raises(ValueError, match='frame_cache_mb must be a number >= 0'):
        make(sources, frame_cache_mb=-1)


def test_sharp_settings_give_the_source_crop_back(sources):
    ds = make(sources, prob_video=0.0, shake_length=[0, 0], use_hflip=True, use_rot=True, use_channel_permute=True,
              **CLEAN)
    for i in range(6):
        s = ds[i]
        assert torch.equal(s['lq'], s['gt']) and not s['flow'].any()
    full = make(sources, phase='val', gt_size=None, prob_video=0.0, prob_sharp=1.0)
    s = full[0]  # outside training: the whole photo, unchanged
    src = cv2.imread(str(sources / 'photo_a.png'))[..., ::-1].transpose(2, 0, 1) / 255.0
    assert torch.allclose(s['gt'], torch.from_numpy(src).float(), atol=1e-7) and torch.equal(s['lq'], s['gt'])


def test_video_windows_and_their_flows(sources):
    ds = make(sources, dataroot=str(sources / 'clips'), prob_video=1.0, prob_sharp=0.0, video_window=[5, 5],
              gt_size=None, phase='val', **CLEAN)
    assert [item[:3] for item in ds.items[9:]] == [('clip', 1, k) for k in range(9)]  # 'cut', then 'pan'
    s = ds[9 + 4]  # the pan clip's centre frame: a 5-frame window fits; content moves +1 px per frame
    flow = s['flow'][:, 16:-16, 16:-16].reshape(4, -1).median(dim=1).values
    assert torch.allclose(flow, torch.tensor([-2.0, 0.0, 2.0, 0.0]), atol=0.3)
    sharp = cv2.imread(str(sources / 'clips' / 'pan' / '4.png'))[..., ::-1].transpose(2, 0, 1) / 255.0
    assert torch.allclose(s['gt'], torch.from_numpy(sharp.copy()).float(), atol=1e-7)
    assert (s['lq'] - s['gt']).abs().mean() > 0.01
    edge = ds[9]  # the clip's first frame: no room for a window, so the pair is sharp
    assert torch.equal(edge['lq'], edge['gt'])


def test_shake_flow_is_the_trajectory_ends():
    img = texture(40, 40).astype(np.float32) / 255
    cfg = bs.SynthConfig(shake_length=(10.0, 10.0), prob_sharp=0.0, **CLEAN)
    lq, _, flow = bs.shake_pair(np.random.default_rng(3), img, cfg)
    rng = np.random.default_rng(3)
    bs._draw(rng, cfg)
    rng.uniform(size=2)
    pts = bs.random_trajectory(rng, 10.0)  # the same draws as shake_pair's
    assert np.allclose(flow[0, 0], np.concatenate([pts[0], pts[-1]]))


def test_bad_options_and_sources_are_named(sources, tmp_path):
    with pytest.raises(ValueError, match="unknown option 'shake_lenght'.*did you mean 'shake_length'"):
        make(sources, shake_lenght=[0, 4])
    with pytest.raises(ValueError, match="'shake_anchor' must be one of mean, middle, got 'centre'"):
        make(sources, shake_anchor='centre')
    with pytest.raises(FileNotFoundError, match='dataroot not found'):
        make(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no images or videos'):
        make(tmp_path / 'empty')
    with pytest.raises(ValueError, match=r'photo_a\.png is 56x64 .* smaller than gt_size 60'):
        make(sources, dataroot=str(sources / 'photo_a.png'), gt_size=60)[0]
    with pytest.raises(ValueError, match="'gt_size'"):
        MotionBlurSynthDataset(dict(dataroot=str(sources), phase='train'))
