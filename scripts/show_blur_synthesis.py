"""Draw the motion-blur synthesis pipeline's stages on one image (``deblurzoo/data/blur_synthesis.py``).

    python scripts/show_blur_synthesis.py [--image PATH] [--length 16] [--seed 3] [--out docs/blur_synthesis.jpg]

Panels, left to right: the sharp image; the camera-shake trajectory's kernel (enlarged); the blur averaged in linear
light (saturated highlights smear into grey); the same with the highlights' light restored before the blur, so that
they clip after it and leave streaks; then sensor noise and JPEG. The default image is scikit-image's
``motorcycle_left.png`` (the package's data folder); a crop around its highlights.
"""
import argparse
import importlib.util
import os
import sys

import cv2
import numpy as np

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT_DIR)  # the repository's deblurzoo, also when run as a file

from deblurzoo.data import blur_synthesis as bs  # noqa: E402
from deblurzoo.data.motion_blur_synth_dataset import read_frame  # noqa: E402
from deblurzoo.data import output_guard  # noqa: E402
from deblurzoo.data.safe_io import write_image  # noqa: E402

GAMMA, GAIN, THRESHOLD = 2.2, 10.0, 0.98
NOISE = (2e-4, 2e-3)  # shot variance per unit signal, read std
QUALITY = 60


def default_image():
    """scikit-image's ``motorcycle_left.png`` (chrome with specular highlights), read from the package's data folder."""
    spec = importlib.util.find_spec('skimage')
    if spec is None:
        raise ModuleNotFoundError('scikit-image is not installed (pip install scikit-image), or give --image')
    path = os.path.join(list(spec.submodule_search_locations)[0], 'data', 'motorcycle_left.png')
    return read_frame(path)


def crop_bright(img, size=256):
    """A ``size`` square of ``img`` centred (as far as it fits) on its largest saturated area."""
    h, w = img.shape[:2]
    size = min(size, h, w)
    bright = cv2.boxFilter((img.max(axis=2) >= 250).astype(np.float32), -1, (size // 2, size // 2))
    y, x = np.unravel_index(np.argmax(bright), bright.shape)
    y0, x0 = int(np.clip(y - size // 2, 0, h - size)), int(np.clip(x - size // 2, 0, w - size))
    return img[y0:y0 + size, x0:x0 + size]


def stages(img, length, seed):
    """The pipeline's stages on ``img`` (float BGR in [0, 1]): a list of (label, float BGR image)."""
    rng = np.random.default_rng(seed)
    pts = bs.random_trajectory(rng, length)
    kernel = bs.trajectory_kernel(pts)
    lin = bs.to_linear(img, GAMMA)
    plain = bs.from_linear(bs.blur(lin, kernel), GAMMA)
    lin_hdr = bs.blur(bs.boost_highlights(lin, img, THRESHOLD, GAIN), kernel)
    clipped = bs.from_linear(lin_hdr, GAMMA)
    noisy = bs.jpeg(bs.quantize(bs.from_linear(bs.sensor_noise(rng, lin_hdr, *NOISE), GAMMA)), QUALITY)
    size = img.shape[0]
    k = cv2.resize(np.pad(kernel / kernel.max(), 1), (size, size), interpolation=cv2.INTER_NEAREST)
    return [('sharp', img), (f'kernel ({length:g} px long)', np.repeat(k[..., None], 3, axis=2)),
            ('linear-light blur', plain), (f'highlights x{GAIN:g}, clipped', clipped),
            (f'noise + JPEG q{QUALITY}', noisy)]


def label(img, text):
    """``img`` under a white caption strip holding ``text``."""
    strip = np.full((22, img.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, img], axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--image', help='a sharp image (default: scikit-image motorcycle_left.png)')
    parser.add_argument('--length', type=float, default=16.0, help='trajectory extent in px')
    parser.add_argument('--seed', type=int, default=3)
    parser.add_argument('--out', default=os.path.join(ROOT_DIR, 'docs', 'blur_synthesis.jpg'))
    args = parser.parse_args(argv)
    try:
        output_guard.refuse_overwriting_inputs(args.out, [args.image])
        img = read_frame(args.image) if args.image else default_image()
    except (OSError, ValueError) as err:
        print(f'show_blur_synthesis.py: error: {err}', file=sys.stderr)
        return 1
    img = crop_bright(img).astype(np.float32) / 255.0
    panels = [label(np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8), text) for text, x in stages(img, args.length,
                                                                                                   args.seed)]
    sep = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, sep)][:-1], axis=1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    try:
        write_image(args.out, row, [cv2.IMWRITE_JPEG_QUALITY, 85])
    except (OSError, ValueError) as err:
        print(f'show_blur_synthesis.py: error: {err}', file=sys.stderr)
        return 1
    print(f'{args.out}: {row.shape[1]}x{row.shape[0]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
