"""scripts/show_blur_synthesis.py: the README's picture of the synthesis pipeline's stages."""
import cv2
import numpy as np

from data_factory import load_script

script = load_script('show_blur_synthesis')


def highlight_image(size=64):
    """A grey texture with a small saturated highlight: the highlight panel differs from the plain blur."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.uniform(60, 160, (size, size, 3)).astype(np.float32), (0, 0), 2).astype(np.uint8)
    img[28:34, 28:34] = 255
    return img


def test_draws_five_labelled_panels_of_the_pipeline(tmp_path, capsys):
    src = tmp_path / 'photo.png'
    cv2.imwrite(str(src), highlight_image())
    out = tmp_path / 'docs' / 'stages.jpg'
    assert script.main(['--image', str(src), '--out', str(out), '--length', '8']) == 0
    row = cv2.imread(str(out))
    assert row.shape == (64 + 22, 5 * 64 + 4 * 4, 3)  # five panels under caption strips, 4-px separators
    assert str(out) in capsys.readouterr().out
    stages = dict(script.stages(highlight_image().astype(np.float32) / 255, 8.0, 3))
    assert list(stages) == ['sharp', 'kernel (8 px long)', 'linear-light blur', 'highlights x10, clipped',
                            'noise + JPEG q60']
    # the highlight's light, restored before the blur, clips after it: the streak is brighter than the plain blur's
    centre = (slice(24, 38), slice(24, 38))
    assert stages['highlights x10, clipped'][centre].mean() > stages['linear-light blur'][centre].mean() + 0.05


def test_same_seed_same_picture_and_its_input_is_never_replaced(tmp_path, capsys):
    src = tmp_path / 'photo.png'
    cv2.imwrite(str(src), highlight_image())
    before = src.read_bytes()
    assert script.main(['--image', str(src), '--out', str(src)]) == 1
    assert 'is an input; not overwriting it' in capsys.readouterr().err
    assert src.read_bytes() == before
    for name in ('a.png', 'b.png'):
        assert script.main(['--image', str(src), '--out', str(tmp_path / name), '--seed', '5']) == 0
    assert (tmp_path / 'a.png').read_bytes() == (tmp_path / 'b.png').read_bytes()
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not an image')
    assert script.main(['--image', str(broken), '--out', str(tmp_path / 'c.png')]) == 1
    assert str(broken) in capsys.readouterr().err
