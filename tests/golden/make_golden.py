"""Record (or check) the outputs of every registered arch through every inference path and frame mode.

    PYTHONPATH=$PWD python tests/golden/make_golden.py            # rewrite tests/golden/golden_outputs.npz
    PYTHONPATH=$PWD python tests/golden/make_golden.py SARN SVDN  # re-record only these archs' cases

``tests/golden/test_golden.py`` runs the same cases and compares them with the recorded file, so a refactoring of the
inference code (the CLI's restorer, the models' validation/test path) that changes any output shows up.

Each tiny net is built with every constructor argument written out (``ARCHS``), seeded, then its parameters are
shifted by seeded noise (so zero-initialised branches such as offset convs contribute). An arch whose own behaviour
changes on purpose (new defaults, a changed block) gives other outputs: update its entry in ``ARCHS`` if its
arguments changed, then re-record its cases with ``make_golden.py NAME`` (cases naming a two-stage pair belong to both
archs); every other arch's record stays as it was.

Paths (case keys are ``<arch>/<path>``): the restorer the CLI uses (``cli/...``: plain, tiled, self-ensemble; video
nets on a stream of frames and on a single image) and the models' test path (``model/...``: ``DeblurModel`` for image
archs, ``VideoDeblurModel`` for video archs and for an image arch run per frame, ``TwoStageVideoModel``).
"""
import os
import os.path as osp
import sys
import tempfile

import numpy as np
import torch

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.models import build_model

GOLDEN = osp.join(osp.dirname(osp.abspath(__file__)), 'golden_outputs.npz')
H, W, T = 12, 42, 3  # tiles of TILE with TILE_OVERLAP split W in two
TILE, TILE_OVERLAP = 40, 8

# every constructor argument, explicit: a changed default elsewhere does not change these nets
ARCHS = {
    'SVDN': dict(num_in_ch=3, num_out_ch=3, num_feat=8, dilations=(1, 2, 4), num_conv=1, deform_kernel_size=5,
                 dilated=True, deform=True, dcn_backend=None),
    'SARN': dict(num_in_ch=3, num_out_ch=3, num_feat=4, num_block=1, num_drm=6, with_sa=True, sa_reduction=8,
                 sa_kv_size=16, dcn_backend=None),
    'AtrousNet': dict(num_in_ch=3, num_out_ch=3, num_feat=4, head_kernel=9, num_down=1, num_block=1, block_feat=8,
                      branch_feat=4, dilations=(1, 2, 3, 4), atrous=True),
    'SAPHNet': dict(num_in_ch=3, num_out_ch=3, num_feat=4, num_block=(1, 1, 1), kernel_size=3, attn_ratio=0.5, max_offset=3.0,
                    attention=True, pdf=True, pdf_offsets=True, cross_attention=True, cross_stage_attention=True,
                    masks=True, stage_supervision=True, sampling='adaptive', sample_ratio=1.0, sampler_feat=4),
    'DMPHN': dict(num_in_ch=3, num_out_ch=3, num_feat=4, num_block=(1, 1, 1), stage_supervision=False, sampling='adaptive',
                  sample_ratio=1.0, sampler_feat=4),
    'SARNMulti': dict(num_in_ch=3, num_out_ch=3, num_frame=3, num_feat=4, num_block=1, num_drm=6, with_sa=True,
                      sa_reduction=8, sa_kv_size=16, dcn_backend=None),
    'SARNRecurrent': dict(num_in_ch=3, num_out_ch=3, num_feat=4, num_block=1, num_drm=6, with_sa=True, sa_reduction=8,
                          sa_kv_size=16, num_prev=2, num_next=2, lstm_feat=4, lstm_kernel=3, lstm_bypass=False,
                          dcn_backend=None),
    'MLFANet': dict(num_in_ch=3, num_out_ch=3, num_frame=3, num_feat=4, num_level=2, num_block=1, head_kernel=7),
}
IMAGE_ARCHS = ('SVDN', 'SARN', 'AtrousNet', 'SAPHNet', 'DMPHN')
VIDEO_ARCHS = ('SARNMulti', 'SARNRecurrent', 'MLFANet')
TWO_STAGE = ('AtrousNet', 'MLFANet')  # stage 1, stage 2


def build(name):
    """The tiny ``name`` net, seeded and shifted by seeded noise, in eval mode on the CPU."""
    torch.manual_seed(0)
    net = build_network({'type': name, **ARCHS[name]})
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


def image(seed=2):
    return torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(seed))


def clip(seed=3):
    return torch.rand(1, T, 3, H, W, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- the code under test


def cli_restorer(net, num=1, tile=None, stage1=None):
    """The CLI's restorer for ``net`` (and a two-stage model's ``stage1``)."""
    from deblurzoo.inference import Restorer
    return Restorer(net, stage1=stage1, self_ensemble=num, tile=tile, tile_overlap=TILE_OVERLAP)


def cli_image(net, x, **kwargs):
    return cli_restorer(net, **kwargs).image(x)


def cli_video(net, lq, **kwargs):
    return torch.stack(list(cli_restorer(net, **kwargs).video(iter(lq.unbind(1)))), 1)


def _opt(model_type, name, folder, val, stage1_ckpt=None):
    opt = {
        'name': 'golden', 'model_type': model_type, 'is_train': False, 'num_gpu': 0, 'dist': False, 'scale': 1,
        'network_g': {'type': name, **ARCHS[name]},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'visualization': osp.join(folder, 'vis')},
        'val': {'save_img': False, **val},
    }
    if stage1_ckpt:
        opt['network_stage1'] = {'type': TWO_STAGE[0], **ARCHS[TWO_STAGE[0]]}
        opt['path']['pretrain_network_stage1'] = stage1_ckpt
    return opt


def model_test(model_type, name, lq, val=None, stage1=None):
    """``model.test()`` of a ``model_type`` model holding :func:`build`'s ``name`` net (and ``stage1``) on ``lq``."""
    with tempfile.TemporaryDirectory() as folder:
        ckpt = None
        if stage1 is not None:
            ckpt = osp.join(folder, 'stage1.pth')
            torch.save({'params': stage1.state_dict()}, ckpt)
        model = build_model(_opt(model_type, name, folder, val or {}, ckpt))
        model.net_g.load_state_dict(build(name).state_dict())
        model.feed_data({'lq': lq})
        model.test()
        return model.output.detach()


# --------------------------------------------------------------------------------------------------------- the cases


def cases():
    """``{key: (archs, thunk)}``: every recorded output, the archs it depends on, and how to compute it."""
    out = {}
    for name in IMAGE_ARCHS:
        out[f'{name}/cli/plain'] = ((name, ), lambda n=name: cli_image(build(n), image()))
        out[f'{name}/cli/tile'] = ((name, ), lambda n=name: cli_image(build(n), image(), tile=TILE))
        out[f'{name}/cli/ensemble8'] = ((name, ), lambda n=name: cli_image(build(n), image(), num=8))
        out[f'{name}/model/plain'] = ((name, ), lambda n=name: model_test('DeblurModel', n, image()))
        out[f'{name}/model/ensemble8'] = (
            (name, ), lambda n=name: model_test('DeblurModel', n, image(), {'self_ensemble': 8}))
    for name in VIDEO_ARCHS:
        out[f'{name}/cli/video'] = ((name, ), lambda n=name: cli_video(build(n), clip()))
        out[f'{name}/cli/video_tile'] = ((name, ), lambda n=name: cli_video(build(n), clip(), tile=TILE))
        out[f'{name}/cli/video_ensemble4'] = ((name, ), lambda n=name: cli_video(build(n), clip(), num=4))
        out[f'{name}/cli/single_frame'] = ((name, ), lambda n=name: cli_image(build(n), image()))
        out[f'{name}/model/plain'] = ((name, ), lambda n=name: model_test('VideoDeblurModel', n, clip()))
        out[f'{name}/model/ensemble4'] = (
            (name, ), lambda n=name: model_test('VideoDeblurModel', n, clip(), {'self_ensemble': 4}))
        out[f'{name}/model/flip_seq'] = (
            (name, ), lambda n=name: model_test('VideoDeblurModel', n, clip(), {'flip_seq': True}))
    out['AtrousNet/model/video_per_frame'] = (
        ('AtrousNet', ), lambda: model_test('VideoDeblurModel', 'AtrousNet', clip(), {'per_frame': True}))
    first, second = TWO_STAGE
    pair = f'{first}+{second}'
    out[f'{pair}/cli/video'] = (TWO_STAGE, lambda: cli_video(build(second), clip(), stage1=build(first)))
    out[f'{pair}/cli/video_ensemble4'] = (
        TWO_STAGE, lambda: cli_video(build(second), clip(), num=4, stage1=build(first)))
    out[f'{pair}/model/plain'] = (TWO_STAGE, lambda: model_test('TwoStageVideoModel', second, clip(),
                                                                stage1=build(first)))
    out[f'{pair}/model/ensemble4'] = (
        TWO_STAGE, lambda: model_test('TwoStageVideoModel', second, clip(), {'self_ensemble': 4}, build(first)))
    return out


def run(key, thunk):
    with torch.no_grad():
        return thunk().float().numpy()


def dedupe(recorded):
    """Outputs equal to an earlier one bit for bit are stored as the name of that one (a 0-d string array)."""
    stored, seen = {}, {}
    for key, value in recorded.items():
        if value.dtype.kind == 'U':
            value = recorded[str(value)]
        digest = (value.shape, value.tobytes())
        if digest in seen:
            stored[key] = np.array(seen[digest])
        else:
            stored[key] = value
            seen[digest] = key
    return stored


def load():
    """The recorded outputs by case key (the stored names of equal outputs resolved)."""
    recorded = dict(np.load(GOLDEN))
    return {key: recorded[str(value)] if value.dtype.kind == 'U' else value for key, value in recorded.items()}


def main(names):
    unknown = sorted(set(names) - set(ARCHS))
    if unknown:
        sys.exit(f'unknown arch(s) {unknown}; choose from {sorted(ARCHS)}')
    torch.set_num_threads(1)
    recorded = load() if names and osp.isfile(GOLDEN) else {}
    for key, (archs, thunk) in cases().items():
        if not names or set(archs) & set(names):
            recorded[key] = run(key, thunk)
            print(f'{key}: {recorded[key].shape}')
    tmp = GOLDEN + '.tmp.npz'
    np.savez_compressed(tmp, **dedupe(recorded))
    os.replace(tmp, GOLDEN)
    print(f'wrote {len(recorded)} outputs to {GOLDEN} ({osp.getsize(GOLDEN) / 1024:.0f} KiB)')


if __name__ == '__main__':
    main(sys.argv[1:])
