"""Conformance with Brehm, Scherer, Lienhart, "High-Resolution Dual-Stage Multi-Level Feature Aggregation for Single
Image and Video Deblurring" (NTIRE 2020; paper 002): stage 1 (AtrousNet) and stage 2 (MLFANet) are laid out as the
paper describes, both ablations of its Table 2 build and differ as it says, and the shipped REDS option files carry
its training settings (Sec. 4: optimisation, augmentation, batches, loss, self-ensemble).

The paper states no parameter count: AtrousNet's widths come from the authors' released code (DESIGN.md) and its size
is pinned here as our record of that reading. Nets of the paper's size are built on the meta device. Not checkable
here: the 175 ms / 400 ms run times (V100) and the PSNR figures.
"""
import math
from pathlib import Path

import pytest
import torch
import yaml

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml
from deblurzoo.archs.arch_util import ScaledConv2d, ScaledConvTranspose2d, ScaledResBlock, count_parameters
from deblurzoo.archs.atrous_arch import AtrousBlock
from deblurzoo.data.reds_dataset import REDSDeblurDataset
from data_factory import load_script, make_reds_tree

OPTIONS = Path(__file__).resolve().parents[2] / 'options'
MODEL_COST = load_script('model_cost')


def meta_net(arch, **kwargs):
    """The registered ``arch`` on the meta device (parameters without storage)."""
    with torch.device('meta'):
        return build_network(dict(type=arch, **kwargs)).eval()


def _option(rel):
    with open(OPTIONS / rel) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def _network(rel):
    opt = dict(_option(rel)['network_g'])
    return meta_net(opt.pop('type'), **opt)


def _macs(net, h, w):
    return MODEL_COST.count_cost(net, torch.empty(1, 3, h, w, device='meta'))['macs']


# ----------------------------------------------------------------------------------------------- stage 1: AtrousNet


def test_stage1_layout():
    """"the first layer uses a large convolutional kernel with a size of 9x9"; "down-sampling by strided convolution
    with a stride of 2 and kernel size of 3x3"; "a total of 20 of our proposed atrous residual block"; each "performs
    four 3x3 convolutions in parallel with 128 filters each and atrous rates of 1, 2, 3 and 4. We concatenate ... 512
    feature maps ... another 3x3 convolution ... reduce the number of feature maps to 256"; "a single deconvolution
    followed by 2 standard convolution layers. The output represent a residual image"."""
    net = meta_net('AtrousNet')
    assert net.head[0].kernel_size == (9, 9) and net.head[0].out_channels == 64
    assert len(net.downs) == 1 and net.downs[0][0].stride == (2, 2) and net.downs[0][0].kernel_size == (3, 3)
    assert len(net.blocks) == 20 and all(isinstance(b, AtrousBlock) for b in net.blocks)
    for block in net.blocks:
        assert [b[0].dilation for b in block.branches] == [(1, 1), (2, 2), (3, 3), (4, 4)]
        assert all(b[0].out_channels == 128 and b[0].kernel_size == (3, 3) for b in block.branches)
        assert (block.fuse[0].in_channels, block.fuse[0].out_channels, block.fuse[0].kernel_size) == (512, 256, (3, 3))
    assert len(net.ups) == 1 and isinstance(net.ups[0][0], ScaledConvTranspose2d)
    assert (net.ups[0][0].in_channels, net.ups[0][0].out_channels) == (384, 128)  # 256 + the stride-2 skip's 128
    assert (net.tail[0].out_channels, net.out.out_channels) == (64, 3)


def test_stage1_size_with_the_authors_widths():
    """Our record (README: 47.9M); the paper gives no count. Tolerance 1 %: a change of layout shows here."""
    params = count_parameters(meta_net('AtrousNet'))
    assert math.isclose(params, 47.9e6, rel_tol=0.01), params


def test_table2_stage1_ablation_without_atrous_conv():
    """Table 2 "stage 1 (w/o atrous conv)": "a simple encoder-decoder network with three down-sampling layers and skip
    connections, followed by 12 standard residual blocks with 512 filters each and a constant atrous rate of 1"
    (``options/train_atrousnet_noatrous_reds.yml``); "Our proposed atrous residual network has fewer trainable
    parameters, but it takes longer to calculate a sharp image" (here: more MACs per 720p frame)."""
    ablation = _network('train_atrousnet_noatrous_reds.yml')
    assert len(ablation.downs) == 3 and len(ablation.ups) == 3
    assert len(ablation.blocks) == 12 and all(isinstance(b, ScaledResBlock) for b in ablation.blocks)
    convs = [conv for block in ablation.blocks for conv in block.modules() if isinstance(conv, ScaledConv2d)]
    assert convs and all(conv.out_channels == 512 for conv in convs)
    assert all(m.dilation == (1, 1) for m in ablation.modules() if isinstance(m, torch.nn.Conv2d))
    atrous = _network('train_atrousnet_reds.yml')
    assert count_parameters(atrous) < count_parameters(ablation)
    assert _macs(atrous, 720, 1280) > _macs(ablation, 720, 1280)


# ------------------------------------------------------------------------------------------------- stage 2: MLFANet


def test_stage2_layout():
    """"We use strided convolutions with a stride of 2 for down-sampling. All frames are processed independently using
    identical weights"; "We fuse the resulting features with a convolution layer that is followed by three residual
    blocks (two consecutive convolutions with kernel size 3)"; "Aggregation across multiple resolutions is achieved by
    up-sampling lower resolutions by a factor of two and subsequent element-wise addition"."""
    net = meta_net('MLFANet')
    widths = [32, 64, 128, 256, 512]
    assert net.num_frame == 3 and [layer[0].out_channels for layer in net.encoder] == widths
    assert [layer[0].stride for layer in net.encoder[1:]] == [(2, 2)] * 4
    for fusion, width in zip(net.fusions, widths):
        assert (fusion[0].in_channels, fusion[0].out_channels) == (3 * width, width)
        assert [type(m) for m in fusion[2:]] == [ScaledResBlock] * 3
        assert all(c.kernel_size == (3, 3) for b in fusion[2:] for c in b.modules() if isinstance(c, ScaledConv2d))
    assert len(net.ups) == 4 and all(isinstance(up[0], ScaledConvTranspose2d) for up in net.ups)


def test_table2_stage2_single_image_ablation():
    """Table 2 "stage 2 single": "We keep the architecture identical and remove the feature extraction for time-step
    t-1 as well as time-step t+1": the nets differ only in the fusion convs' inputs (3 frames' features vs 1)."""
    video, single = meta_net('MLFANet'), meta_net('MLFANet', num_frame=1)
    fewer = sum(2 * c * c * 9 for c in [32, 64, 128, 256, 512])  # two frames' c channels into each level's 3x3 conv
    assert count_parameters(video) - count_parameters(single) == fewer
    out = build_network(dict(type='MLFANet', num_frame=1, num_feat=4, num_level=2, num_block=1))(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 8, 8)


# ---------------------------------------------------------------------------------------------- training and testing

TRAIN_FILES = ['train_atrousnet_reds.yml', 'train_atrousnet_noatrous_reds.yml', 'train_mlfa_reds.yml']


@pytest.mark.parametrize('rel', TRAIN_FILES)
def test_training_settings(rel):
    """"Adam ... initial learning rate 0.0001, beta_1 = 0.9 and beta_2 = 0.999"; "about 2.5 million iterations"; "random
    image crops with a size of 320x320"; "flip and rotate images"; "pixel-wise absolute error"; "Each mini-batch
    consisted of 2 random image crops ... for our stage 2 model and a batch size of 1 ... for our stage 1 model"."""
    opt = _option(rel)
    train, data = opt['train'], opt['datasets']['train']
    optim = train['optim_g']
    assert (optim['type'], optim['lr'], list(optim['betas'])) == ('Adam', 1e-4, [0.9, 0.999])
    assert train['total_iter'] == 2_500_000
    assert train['pixel_opt']['type'] == 'L1Loss'
    assert data['gt_size'] == 320 and data['use_hflip'] and data['use_rot']
    assert data['batch_size_per_gpu'] == (2 if opt['network_g']['type'] == 'MLFANet' else 1)


def _shipped_options():
    return sorted(p.relative_to(OPTIONS).as_posix() for p in OPTIONS.glob('**/*.yml'))


def test_colour_jitter_on_input_and_target_alike():
    """"We varied image brightness, hue, saturation, and image contrast by small amounts for every image crop": every
    shipped option file that jitters jitters the target with the input (``color_jitter_gt`` true or left at its
    default), and the default is true."""
    jittering = {}
    for rel in _shipped_options():
        for phase, data in (_option(rel).get('datasets') or {}).items():
            if data.get('color_jitter'):
                jittering[f'{rel}: datasets.{phase}'] = data.get('color_jitter_gt', True)
    assert set(TRAIN_FILES) <= {key.split(':')[0] for key in jittering}
    assert all(jittering.values()), {key: gt for key, gt in jittering.items() if not gt}


def test_colour_jitter_gt_defaults_to_true(tmp_path):
    root = make_reds_tree(str(tmp_path / 'REDS'), clips=('000', ), num_frames=3)
    dataset = REDSDeblurDataset(dict(name='reds', phase='train', num_frame=1, gt_size=16, io_backend={'type': 'disk'},
                                     dataroot_lq=f'{root}/train_blur', dataroot_gt=f'{root}/train_sharp',
                                     color_jitter={'brightness': 0.05}))
    assert dataset.color_jitter_gt


def test_self_ensemble_of_four():
    """"augmenting the input frames to four different versions by rotating and flipping" (the reported ensembles)."""
    assert _option('test_mlfa_reds.yml')['val']['self_ensemble'] == 4
