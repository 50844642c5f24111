"""SAPHNet against its paper (Suin, Purohit, Rajagopalan, TPAMI; paper 003): every ablation switch of Table IV
builds and changes what it should, the size and cost of Table III (as DESIGN.md fixes them: about 23M parameters and
140 G multiply-accumulates at 256x256) within stated tolerances, and the schedule of ``options/train_saphn.yml``
("we first pre-train our deblurring network alone for a few epochs", Sec. 3.1.1)."""
import os.path as osp

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from deblurzoo.archs.arch_util import count_parameters
from deblurzoo.archs.saphn_arch import ContentAwareModule, EfficientAttention, PixelDependentFilter, SAPHNet
from deblurzoo.archs.token_ops import TokenConv
from deblurzoo.ops import use_backend

TINY = dict(num_feat=4, num_block=(1, 1, 1), sampler_feat=4)
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAPER_PARAMS, PARAMS_TOL = 23e6, 0.05  # Table III: 23M
PAPER_MACS, MACS_TOL = 140e9, 0.05  # Table III: 140 G at 256x256
GOPRO_TRAIN_PAIRS = 2103


def _tiny(**kwargs):
    torch.manual_seed(0)
    return SAPHNet(**{**TINY, **kwargs})


def _modules(net, cls):
    return [m for m in net.modules() if isinstance(m, cls)]


def _train_aux(net, x):
    net.train()
    return net(x, return_aux=True)


# ------------------------------------------------------------------------------------------------ Table III


def test_parameters_match_table_iii():
    params = count_parameters(SAPHNet())
    assert abs(params / PAPER_PARAMS - 1) < PARAMS_TOL, f'{params / 1e6:.2f}M parameters, paper 23M'


def test_macs_at_256_match_table_iii():
    """Counted on the meta device (shapes only) with uniform sampling, the network's reference cost; adaptive
    sampling processes as many pixels (its extra cost, the probability heads, is checked in test_saphn_arch.py)."""
    with torch.device('meta'):
        torch.manual_seed(0)
        net = SAPHNet().eval()
        x = torch.rand(1, 3, 256, 256)
    with use_backend('pytorch'), torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, policy='uniform')
    macs = counter.get_total_flops() / 2  # the counter reports 2 FLOPs per MAC
    assert abs(macs / PAPER_MACS - 1) < MACS_TOL, f'{macs / 1e9:.1f} G MACs at 256x256, paper 140 G'


# ------------------------------------------------------------------------------------------------- Table IV


def test_attention_switch_removes_the_global_branch():
    net = _tiny(attention=False)
    assert all(m.attn is None and m.cross is None and m.fuse is None for m in _modules(net, ContentAwareModule))
    assert all(m.attn is not None for m in _modules(_tiny(), ContentAwareModule))


def test_pdf_switch_replaces_pixel_dependent_filtering_by_a_plain_conv():
    net = _tiny(pdf=False)
    assert not _modules(net, PixelDependentFilter)
    assert all(type(m.local) is TokenConv for m in _modules(net, ContentAwareModule))
    assert all(isinstance(m.local, PixelDependentFilter) for m in _modules(_tiny(), ContentAwareModule))


def test_pdf_offsets_switch_keeps_the_regular_taps():
    for offsets in (True, False):
        pdfs = _modules(_tiny(pdf_offsets=offsets), PixelDependentFilter)
        assert pdfs and all(p.offsets is offsets for p in pdfs)
        k2 = pdfs[0].k2
        assert all(p.meta.out_channels == k2 * (3 if offsets else 1) for p in pdfs)  # kernel [+ (dy, dx) per tap]


def test_cross_attention_switch_acts_on_decoders_only():
    for cross in (True, False):
        net = _tiny(cross_attention=cross)
        for stage in net.stages:
            assert all(blk.cross is None for level in stage.encoders for blk in level)
            assert all((blk.cross is not None) is cross for level in stage.decoders for blk in level)


def test_cross_stage_attention_switch():
    assert len(_tiny().cross_stage) == 2  # stage 1 -> 2 and 2 -> 3
    assert _tiny(cross_stage_attention=False).cross_stage is None


def test_masks_switch_removes_the_spatial_and_channel_masks():
    for masks in (True, False):
        attns = _modules(_tiny(masks=masks), EfficientAttention)
        assert attns and all(hasattr(a, 'spatial_mask') is masks and hasattr(a, 'channel_mask') is masks
                             for a in attns)


def test_stage_supervision_switch_returns_the_earlier_stages():
    x = torch.rand(1, 3, 16, 16)
    for supervise, count in ((True, 2), (False, 0)):
        _, aux = _train_aux(_tiny(stage_supervision=supervise), x)
        assert len(aux['stage_outputs']) == count
        assert all(o.shape == x.shape for o in aux['stage_outputs'])


def test_sampling_switch_uniform_has_no_samplers_and_samples_lattices():
    x = torch.rand(1, 3, 16, 16)
    uniform, adaptive = _tiny(sampling='uniform'), _tiny()
    assert uniform.samplers is None and len(adaptive.samplers) == 2
    assert _train_aux(uniform, x)[1]['sampling'] == []
    assert len(_train_aux(adaptive, x)[1]['sampling']) == 2  # stages 2 and 3 sample adaptively, stage 1 never
    with pytest.raises(ValueError, match='adaptive'):
        uniform(x, policy='sample')


@pytest.mark.parametrize('switch', [
    dict(attention=False), dict(pdf=False), dict(pdf_offsets=False), dict(cross_attention=False),
    dict(cross_stage_attention=False), dict(masks=False), dict(sampling='uniform')
], ids=lambda d: ','.join(f'{k}={v}' for k, v in d.items()))
def test_every_switch_changes_the_output(switch):
    """Each switch changes the function, not only the module list: the switched net takes every parameter it shares
    with the full one (randomised, since several branches start at zero), and the outputs differ."""
    x = torch.rand(1, 3, 16, 16)
    full, switched = _tiny().eval(), _tiny(**switch).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in full.parameters():
            p.normal_(0, 0.2)
    own = switched.state_dict()
    shared = {k: v for k, v in full.state_dict().items() if k in own and own[k].shape == v.shape}
    switched.load_state_dict(shared, strict=False)
    sampling = 'sampling' in switch  # adaptive (greedy) against uniform; the other switches compared uniformly
    with torch.no_grad():
        out_full = full(x, policy='greedy' if sampling else 'uniform')
        out_switched = switched(x) if sampling else switched(x, policy='uniform')
    assert not torch.allclose(out_full, out_switched), f'{switch} left the output unchanged'


# ---------------------------------------------------------------------------------------------- schedule


def test_pretraining_lasts_a_few_epochs_of_gopro():
    with open(osp.join(ROOT, 'options', 'train_saphn.yml')) as f:
        opt = yaml.safe_load(f)
    batch = opt['datasets']['train']['batch_size_per_gpu']
    per_epoch = GOPRO_TRAIN_PAIRS // batch  # BasicSR drops the last incomplete batch
    epochs = opt['train']['pretrain_iter'] / per_epoch
    assert epochs == int(epochs) and 2 <= epochs <= 10, f'pretrain_iter is {epochs:.2f} epochs of GoPro'
    assert opt['train']['pretrain_iter'] < opt['train']['total_iter']
