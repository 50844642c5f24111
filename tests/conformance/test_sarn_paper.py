"""Conformance with Purohit & Rajagopalan, "Spatially-Adaptive Residual Networks for Efficient Image and Video
Deblurring" (paper 000): every ablation switch of its tables builds and changes what it should, and every size or cost
figure it states is checked against its number, with the tolerance given at each check.

Paper-size nets are built on the meta device (shapes only, no storage); costs are counted there with
``scripts/model_cost.py``'s counter. Not checkable here: the run times (0.02 s, 0.05 s per frame on the authors' GPU)
and the PSNR figures (they need the trained models).
"""
import math

import pytest
import torch

import deblurzoo  # noqa: F401  (registers the archs)
from basicsr.archs import build_network
from deblurzoo.archs.arch_util import count_parameters
from data_factory import load_script

MODEL_COST = load_script('model_cost')
TINY = dict(num_feat=4, num_block=1)
SIZE_TOLERANCE = 0.10  # relative; our layer reading lands 5-6 % below the paper's MB (see sarn_arch.py's header)


def meta_net(arch, **kwargs):
    """The registered ``arch`` on the meta device (parameters without storage)."""
    with torch.device('meta'):
        return build_network(dict(type=arch, **kwargs)).eval()


def megabytes(net):
    """float32 model size in MB (1e6 bytes), as the paper's tables quote it."""
    return 4 * count_parameters(net) / 1e6


# Table 3 (GoPro, single image): "DRMs 0 3 6 6 / SA X 7 7 X / Size (MB) 10.7 10.9 11.2 11.2" (X: with, 7: without)
TABLE3 = [(0, True, 10.7), (3, False, 10.9), (6, False, 11.2), (6, True, 11.2)]


@pytest.mark.parametrize('num_drm,with_sa,paper_mb', TABLE3, ids=lambda v: str(v))
def test_table3_variant_sizes(num_drm, with_sa, paper_mb):
    net = meta_net('SARN', num_drm=num_drm, with_sa=with_sa)
    assert math.isclose(megabytes(net), paper_mb, rel_tol=SIZE_TOLERANCE), f'{megabytes(net):.2f} MB vs {paper_mb}'


def test_table3_sizes_are_ordered_and_each_drm_adds_only_its_offset_conv():
    """Table 3's sizes grow with the DRMs (10.7 < 10.9 < 11.2) and SA adds almost nothing (11.2 and 11.2)."""
    sizes = [megabytes(meta_net('SARN', num_drm=d, with_sa=sa)) for d, sa, _ in TABLE3]
    assert sizes == sorted(sizes)
    three_drms = sizes[2] - sizes[1]  # three offset convs, 3x3 from 4n = 128 channels to 2 * 3 * 3 offsets
    assert math.isclose(three_drms, 3 * 4 * (9 * 128 * 18 + 18) / 1e6, rel_tol=1e-9)
    assert sizes[3] - sizes[2] < 0.05  # both round to 11.2 MB in the paper


@pytest.mark.parametrize('num_drm', [0, 3, 6])
@pytest.mark.parametrize('with_sa', [False, True])
def test_table3_switches_build_what_they_say(num_drm, with_sa):
    net = build_network(dict(type='SARN', num_drm=num_drm, with_sa=with_sa, **TINY))
    kinds = [type(m).__name__ for m in net.modules()]
    assert kinds.count('DeformableResidualModule') == num_drm
    assert kinds.count('SelfAttention') == int(with_sa)
    out = net.eval()(torch.rand(1, 3, 16, 20))
    assert out.shape == (1, 3, 16, 20)


def test_full_model_layout():
    """"n (=32) represents the number of channels in the first feature map"; "In our final network, 6 DRMs are present
    in the mid-level of the network"; SA on "the output of the encoder"."""
    net = meta_net('SARN')
    assert net.body.enc1[0].out_channels == 32
    drms = [name for name, m in net.named_modules() if type(m).__name__ == 'DeformableResidualModule']
    assert len(drms) == 6 and all(name.startswith(('body.enc3', 'body.dec3')) for name in drms)
    assert type(net.body.attention).__name__ == 'SelfAttention'
    spatial = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert all(m.kernel_size == (3, 3) for m in spatial)  # "we employ only 3x3 filters" (1x1: attention, ConvLSTM)


# Table 2 (DVD): "Size (MB) ... 11.2 12.4" for Ours-Multi and Ours-Recurrent
@pytest.mark.parametrize('arch,paper_mb', [('SARNMulti', 11.2), ('SARNRecurrent', 12.4)])
def test_table2_video_sizes(arch, paper_mb):
    net = meta_net(arch)
    assert math.isclose(megabytes(net), paper_mb, rel_tol=SIZE_TOLERANCE), f'{arch}: {megabytes(net):.2f} MB'


def test_recurrent_takes_five_frames_per_step():
    """"Our network accepts 5 frames at each time-step (early fusion), of which 2 frames are deblurred estimates from
    past and 2 are blurred frames from future.\""""
    net = meta_net('SARNRecurrent')
    assert (net.num_prev, net.num_next) == (2, 2)
    assert net.body.enc1[0].in_channels == 5 * 3
    assert not net.lstm_bypass  # Eq. 7: I_i = NetD(g_i), the decoder reads the ConvLSTM's output


# "operate on the output of the encoder, where the spatial resolution of features is the smallest which leads to minimum
# additional computations": the attention's MACs against the rest of the forward at 720p
ATTENTION_SHARE = 0.10


def _attention_share(h, w, **kwargs):
    result = MODEL_COST.count_cost(meta_net('SARN', **kwargs), torch.empty(1, 3, h, w, device='meta'))
    attention = result['parts']['body.attention']
    return attention / (result['macs'] - attention)


def test_self_attention_costs_little_at_720p():
    assert _attention_share(720, 1280) <= ATTENTION_SHARE
    # full attention over all h/4 x w/4 positions (sa_kv_size: null) does not keep that claim (why it is not default)
    assert _attention_share(720, 1280, sa_kv_size=None) > 3 * ATTENTION_SHARE


def test_model_cost_prints_the_attention_share(capsys):
    MODEL_COST.main(['--arch', 'SARN', '--size', '32', '32', '--kwargs', '{"num_feat": 4, "num_block": 1}', '--part',
                     'body.attention'])
    printed = capsys.readouterr().out
    assert 'body.attention: ' in printed and 'body.attention / rest = ' in printed, printed
