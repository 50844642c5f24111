"""How much tiled inference differs from restoring the whole image, near the tile borders and away from them.

    python scripts/check_tiling.py --model options/demo/test_svdn_demo.yml \
        --input datasets/demo/test/bikes_04/blur/000003.png --tile 256 --tile-overlap 64

Prints the largest absolute difference (on the [0, 1] scale, before 8-bit rounding) over the whole image, inside the
bands within ``--tile-overlap`` pixels of an inner tile edge, and away from them, plus the PSNR between the two. A
net that sees little around each pixel differs nowhere; nets with a global context (attention, adaptive sampling) or
a large receptive field differ near the seams.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from deblurzoo.inference.loader import load_model  # noqa: E402
from deblurzoo.inference.media import read_image, to_tensor  # noqa: E402
from deblurzoo.inference.test_time import tile_boxes  # noqa: E402


def border_mask(h, w, tile, overlap, align=32):
    """True within ``overlap`` pixels inside a tile's inner edge (one that is not the image's border): the bands
    where tiles overlap and are blended."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    for top, left, th, tw in tile_boxes(h, w, tile, overlap, align):
        for edge, length, rows, inward in ((top, h, True, 1), (top + th, h, True, -1), (left, w, False, 1),
                                           (left + tw, w, False, -1)):
            if 0 < edge < length:
                band = slice(edge, edge + overlap) if inward > 0 else slice(max(edge - overlap, 0), edge)
                if rows:
                    mask[band, :] = True
                else:
                    mask[:, band] = True
    return mask


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, help='arch name or option file (see deblurzoo-infer)')
    parser.add_argument('--weights')
    parser.add_argument('--input', required=True, help='an image')
    parser.add_argument('--tile', type=int, default=128)
    parser.add_argument('--tile-overlap', type=int, default=64)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    model = load_model(args.model, args.weights, device=args.device)
    rgb, _ = read_image(args.input)
    x = to_tensor(rgb, model.device)
    whole = model.restorer(self_ensemble=1).image(x)
    tiled = model.restorer(self_ensemble=1, tile=args.tile, tile_overlap=args.tile_overlap).image(x)
    diff = (whole - tiled).abs().amax(dim=(0, 1)).cpu()  # (h, w): the largest over channels
    h, w = diff.shape
    near = border_mask(h, w, args.tile, args.tile_overlap)
    tiles = len(tile_boxes(h, w, args.tile, args.tile_overlap))
    mse = ((whole - tiled)**2).mean().item()
    psnr = float('inf') if mse == 0 else 10 * torch.log10(torch.tensor(1 / mse)).item()
    away = diff[~near].max().item() if (~near).any() else float('nan')
    print(f'{args.input}: {w}x{h}, {tiles} tiles of {args.tile} overlapping by {args.tile_overlap}')
    print(f'  max |tiled - whole|: {diff.max().item():.2e} overall, {diff[near].max().item() if near.any() else 0:.2e} '
          f'in the blended overlaps ({near.float().mean().item():.0%} of the pixels), '
          f'{away:.2e} away from them; PSNR(tiled, whole) {psnr:.1f} dB')
    return {'overall': diff.max().item(), 'away': away, 'psnr': psnr, 'tiles': tiles}


if __name__ == '__main__':
    main()
