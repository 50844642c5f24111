"""Results table and comparison images for a model evaluated by ``deblurzoo/test.py`` on a GoPro-layout test split.

    python scripts/demo_report.py --dataroot datasets/demo --results results/SVDN_demo --out results/demo_svdn

For every pair of the split it reads the blurry input, the sharp ground truth and the model's output saved by the
test run (``<results>/visualization/<dataset>/<seq>/<frame>_<suffix>.png``), computes PSNR/SSIM (BasicSR's metrics,
RGB, no border crop) of input and output against the ground truth, and writes to ``--out``:
``results.md`` (per sequence and overall: PSNR/SSIM, the gain, and how many sequences got worse),
``results.json`` (per image) and ``compare/<seq>_<frame>.png`` (blurry | deblurred | sharp). ``--out`` must lie
outside ``--dataroot``, and an existing ``results.md``/``results.json`` is replaced only where it is an earlier report
(``results.json`` holds JSON); otherwise the script stops before reading anything.

Where the test run also fed the sharp frames in (the dataset ``--sharp-dataset``, whose outputs are saved the same
way), the table adds what the model does to sharp input: the PSNR of its output against that input (a model that
generalizes gives a sharp frame back unchanged: 40 dB or more).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from collections import defaultdict

import cv2
import numpy as np
from tqdm import tqdm


def _output_path(results, dataset, seq, frame):
    """The one image the test run saved for ``seq/frame`` of ``dataset`` (any suffix)."""
    matches = sorted(glob.glob(osp.join(glob.escape(results), 'visualization', dataset, seq, f'{frame}_*.png')))
    if len(matches) != 1:
        raise FileNotFoundError(f'expected one output for {seq}/{frame} under {results}/visualization/{dataset}, '
                                f'found {len(matches)}: {matches} (did deblurzoo/test.py run with save_img: true?)')
    return matches[0]


def _read_output(results, dataset, seq, frame, shape):
    from deblurzoo.data import safe_io
    out = safe_io.read_image(_output_path(results, dataset, seq, frame), cv2.IMREAD_COLOR)
    if out is None or out.shape != shape:
        raise ValueError(f'output for {seq}/{frame} of {dataset} is unreadable or not {shape}')
    return out


def _labelled(img, text):
    out = img.copy()
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataroot', default='datasets/demo', help='GoPro-layout root')
    parser.add_argument('--split', default='test')
    parser.add_argument('--results', default='results/SVDN_demo', help="the test run's results folder")
    parser.add_argument('--out', default='results/demo_svdn', help='where the table and comparisons go')
    parser.add_argument('--dataset', default='demo_test', help="the blurry test set's name in the test run")
    parser.add_argument('--sharp-dataset', default='demo_test_sharp',
                        help="the test run's set with the sharp frames as input (left out if it has no outputs)")
    args = parser.parse_args(argv)

    import deblurzoo  # noqa: F401  (BasicSR needs deblurzoo's compatibility patches before it imports)
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from deblurzoo.data import output_guard, safe_io
    from deblurzoo.data.gopro_dataset import scan_gopro

    table_path, rows_path = osp.join(args.out, 'results.md'), osp.join(args.out, 'results.json')
    try:  # the report goes beside the data, never among it, and replaces only an earlier report
        output_guard.refuse_overlap(args.out, args.dataroot, '--out', '--dataroot')
        output_guard.check_report_targets([rows_path, table_path], '--out')
    except ValueError as err:
        parser.error(str(err))
    pairs = scan_gopro(args.dataroot, args.split)
    os.makedirs(osp.join(args.out, 'compare'), exist_ok=True)
    with_sharp = osp.isdir(osp.join(args.results, 'visualization', args.sharp_dataset))
    rows = []
    for pair in tqdm(pairs, desc='report', unit='image'):
        seq, frame = pair['key'].split('/')
        frame = osp.splitext(frame)[0]
        blur, sharp = (safe_io.read_image(pair[k], cv2.IMREAD_COLOR) for k in ('lq_path', 'gt_path'))
        out = _read_output(args.results, args.dataset, seq, frame, sharp.shape)
        row = {'key': f'{seq}/{frame}'}
        for name, img in (('input', blur), ('output', out)):
            row[f'psnr_{name}'] = float(calculate_psnr(img, sharp, crop_border=0))
            row[f'ssim_{name}'] = float(calculate_ssim(img, sharp, crop_border=0))
        if with_sharp:  # the sharp frame given as input: how much of it comes back
            same = _read_output(args.results, args.sharp_dataset, seq, frame, sharp.shape)
            row['psnr_sharp_input'] = float(calculate_psnr(same, sharp, crop_border=0))
        rows.append(row)
        panel = np.concatenate([_labelled(blur, 'blurry'), _labelled(out, 'deblurred'), _labelled(sharp, 'sharp')], 1)
        safe_io.write_image(osp.join(args.out, 'compare', f'{seq}_{frame}.png'), panel)

    by_seq = defaultdict(list)
    for row in rows:
        by_seq[row['key'].split('/')[0]].append(row)
    metrics = ('psnr_input', 'psnr_output', 'ssim_input', 'ssim_output')
    metrics += ('psnr_sharp_input', ) if with_sharp else ()
    sharp_head = ' sharp in: PSNR out vs in |' if with_sharp else ''
    lines = [f'# {osp.basename(osp.normpath(args.results))} on {args.dataroot} ({args.split})', '',
             f'| sequence | images | PSNR input | PSNR output | gain (dB) | SSIM input | SSIM output |{sharp_head}',
             '|---|---:|---:|---:|---:|---:|---:|' + ('---:|' if with_sharp else '')]
    gains = {}
    for seq, group in sorted(by_seq.items()) + [('**all**', rows)]:
        m = {k: float(np.mean([r[k] for r in group])) for k in metrics}
        gains[seq] = m['psnr_output'] - m['psnr_input']
        sharp_cell = f" {m['psnr_sharp_input']:.2f} |" if with_sharp else ''
        lines.append(f"| {seq} | {len(group)} | {m['psnr_input']:.2f} | {m['psnr_output']:.2f} | "
                     f"{gains[seq]:+.2f} | {m['ssim_input']:.4f} | {m['ssim_output']:.4f} |{sharp_cell}")
    worse = [seq for seq in by_seq if gains[seq] < 0]
    lines += ['', f'Gain on the whole split: {gains["**all**"]:+.2f} dB; sequences worse than their input: '
              f'{len(worse)} of {len(by_seq)}' + (f' ({", ".join(sorted(worse))})' if worse else '') + '.']
    if with_sharp:
        lows = min(float(np.mean([r['psnr_sharp_input'] for r in g])) for g in by_seq.values())
        lines.append(f"Sharp frames given as input come back at {np.mean([r['psnr_sharp_input'] for r in rows]):.2f} "
                     f'dB PSNR against themselves (lowest sequence {lows:.2f} dB).')
    table = '\n'.join(lines) + '\n'
    safe_io.write_text_atomic(rows_path, json.dumps(rows, indent=1))
    safe_io.write_text_atomic(table_path, table)
    print(table)
    print(f'comparisons (blurry | deblurred | sharp): {osp.join(args.out, "compare")}/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
