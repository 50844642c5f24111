"""Picture of the pixels SAPHNet's adaptive sampling processes (paper 003, Fig. 9), from a trained checkpoint.

    python scripts/show_sampling.py -opt options/demo/test_saphn_demo.yml \
        --image datasets/demo/test/bikes_04/blur/000003.png --out results/saphn_sampling.png

Builds ``network_g`` from the test option file, loads ``path.pretrain_network_g`` (``param_key_g``; the inference
engine's loader, ``weights_only=True``), runs the image through it (greedy top-N sampling, as at test time) and writes
one panel per row: the blurry input, then for stages 1 (uniform), 2 and 3 the pixels sampled at the coarsest level
(red dots over the dimmed input; the paper shows the lowest resolution), and the probability maps of stages 2 and 3.
Also prints how many pixels each level took and what share of them falls in the 25% of pixels with the largest blur
error (when the sharp image is found in the GoPro layout next to the blurry one). Errors are printed, naming the file
or key; ``--out`` never replaces the image or the option file.
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import deblurzoo  # noqa: E402,F401  (registers the archs)
from basicsr.utils import img2tensor  # noqa: E402
from deblurzoo.archs.protocol import arch_info  # noqa: E402
from deblurzoo.data import output_guard, safe_io  # noqa: E402
from deblurzoo.inference.loader import load_model  # noqa: E402


def load_net(opt_path):
    """``network_g`` of a test option file with ``path.pretrain_network_g`` loaded (the inference engine's loader)."""
    loaded = load_model(opt_path)
    if not arch_info(loaded.net).adaptive:
        raise ValueError(f"{opt_path}: network_g {loaded.arch} does not sample adaptively")
    return loaded.net


def _label(img, text):
    out = img.copy()
    for color, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, thick, cv2.LINE_AA)
    return out


def _dots(img, mask):
    out = (img.astype(np.float32) * 0.45).astype(np.uint8)
    out[mask > 0] = (0, 0, 255)
    return out


def _heat(prob):
    """Colour map of P stretched to its own range (the policy only ranks pixels: top-N at test time)."""
    span = max(float(prob.max() - prob.min()), 1e-8)
    return cv2.applyColorMap((255 * (prob - prob.min()) / span).astype(np.uint8), cv2.COLORMAP_INFERNO)


def render(opt_path, image_path):
    """The panels (one image, stacked top to bottom) for ``image_path``, printing each level's pixel count."""
    img = safe_io.read_image(image_path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'cannot decode image {safe_io.shown(image_path)} (corrupt, or not an image OpenCV reads)')
    net = load_net(opt_path)
    x = img2tensor(img.astype(np.float32) / 255.0, bgr2rgb=True, float32=True)[None]
    with torch.no_grad():  # policy 'greedy' is the test-time choice
        _, aux = net(x, policy='greedy', return_aux=True, return_masks=True)
    masks = aux['masks']
    sharp_path = image_path.replace(f'{os.sep}blur{os.sep}', f'{os.sep}sharp{os.sep}')
    sharp = None
    if sharp_path != image_path and osp.isfile(sharp_path):
        sharp = safe_io.read_image(sharp_path, cv2.IMREAD_COLOR)
    hard = None
    if sharp is not None and sharp.shape == img.shape:
        err = np.abs(img.astype(np.float32) - sharp.astype(np.float32)).mean(2)
        hard = err >= np.quantile(err, 0.75)
    panels = [_label(img, 'blurry input')]
    for stage, levels in enumerate(masks, start=1):
        coarse = levels[-1][0, 0].numpy()
        panels.append(_label(_dots(img, coarse), f'stage {stage}: level-{len(levels)} pixels'))
        for level, mask in enumerate(levels, start=1):
            m = mask[0, 0].numpy() > 0
            share = f', {100 * hard[m].mean():.0f}% in the hardest quarter' if hard is not None else ''
            print(f'stage {stage} level {level}: {int(m.sum())} pixels{share}')
    for stage, record in enumerate(aux['sampling'], start=2):
        prob = record['prob'][0, 0].numpy()
        panels.append(_label(_heat(prob), f'stage {stage}: P in [{prob.min():.2f}, {prob.max():.2f}]'))
    return np.concatenate(panels, axis=0)


def main(argv=None):
    """Command-line entry point; returns the exit status (errors are printed, naming the file or key)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-opt', required=True, help='test option file of an adaptive model (SAPHNet, DMPHN)')
    parser.add_argument('--image', required=True, help='blurry image')
    parser.add_argument('--out', required=True, help='output PNG')
    args = parser.parse_args(argv)
    try:
        output_guard.refuse_overwriting_inputs(args.out, [args.image, args.opt])
        panels = render(args.opt, args.image)
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        safe_io.write_image(args.out, panels)
    except (OSError, ValueError) as err:  # InferenceError is a ValueError
        print(f'show_sampling.py: error: {err}', file=sys.stderr)
        return 1
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
