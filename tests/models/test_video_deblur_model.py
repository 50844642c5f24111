"""VideoDeblurModel in-process: window and whole-sequence inference, flip_seq / center_frame_only, the training step
on clips (pixel and perceptual losses), options left untouched, and the early error for saving images in training."""
import copy

import pytest
import torch

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.data.data_util import generate_frame_indices
from basicsr.models import build_model

MULTI = dict(type='SARNMulti', num_frame=5, num_feat=4, num_block=1)
RECURRENT = dict(type='SARNRecurrent', num_feat=4, num_block=1, lstm_feat=4)


def _opt(tmp_path, network, is_train=True, val=None, **train):
    return {
        'name': 'video_unit', 'model_type': 'VideoDeblurModel', 'is_train': is_train, 'num_gpu': 0, 'dist': False,
        'scale': 1, 'network_g': dict(network),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states'),
                 'visualization': str(tmp_path / 'vis')},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'PolyLR', 'total_iter': 10}, 'total_iter': 10,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, **train},
        'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}, **(val or {})},
    }


def _randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.net_g.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _clip(t=6, h=12, w=16, seed=1):
    return torch.rand(1, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_window_net_restores_every_frame_from_its_window(tmp_path):
    model = build_model(_opt(tmp_path, MULTI))
    _randomise(model)
    lq = _clip()
    model.feed_data({'lq': lq})
    model.test()
    assert model.net_g.training, 'test() must hand the network back in training mode'
    net = model.get_bare_model(model.net_g).eval()
    with torch.no_grad():
        expected = torch.stack([net(lq[:, generate_frame_indices(i, 6, 5, 'replicate')]) for i in range(6)], 1)
    assert model.output.shape == lq.shape
    torch.testing.assert_close(model.output, expected)


def test_recurrent_net_takes_the_whole_sequence_and_flip_seq_averages_two_passes(tmp_path):
    model = build_model(_opt(tmp_path, RECURRENT, val={'flip_seq': True}))
    _randomise(model)
    lq = _clip()
    model.feed_data({'lq': lq})
    model.test()
    net = model.get_bare_model(model.net_g).eval()
    with torch.no_grad():
        expected = 0.5 * (net(lq) + net(lq.flip(1)).flip(1))
    torch.testing.assert_close(model.output, expected)
    torch.testing.assert_close(model.lq, lq)  # the input is given back in its order


def test_center_frame_only_keeps_the_centre(tmp_path):
    model = build_model(_opt(tmp_path, RECURRENT, val={'center_frame_only': True}))
    lq = _clip(t=5)
    model.feed_data({'lq': lq})
    model.test()
    torch.testing.assert_close(model.output, lq[:, 2])  # untrained: the identity


@pytest.mark.parametrize('network,gt_of', [(RECURRENT, lambda gt: gt), (MULTI, lambda gt: gt[:, 2])])
def test_training_step_on_clips_lowers_the_loss(tmp_path, network, gt_of):
    opt = _opt(tmp_path, network, perceptual_opt={'type': 'VGGPerceptualLoss', 'pretrained': False,
                                                  'loss_weight': 0.01})
    frozen = copy.deepcopy(opt)
    torch.manual_seed(0)
    model = build_model(opt)
    lq, gt = _clip(t=5, seed=1), _clip(t=5, seed=2)
    model.feed_data({'lq': lq, 'gt': gt_of(gt)})
    losses = []
    for it in range(1, 9):
        model.optimize_parameters(it)
        losses.append(model.log_dict['l_pix'])
    assert 'l_percep' in model.log_dict  # the perceptual loss scores the clip's frames as images
    assert losses[-1] < losses[0], losses
    assert opt == frozen, 'the model changed its options'


def test_saving_images_while_training_is_refused_when_built(tmp_path):
    with pytest.raises(ValueError, match='val.save_img'):
        build_model(_opt(tmp_path, RECURRENT, val={'save_img': True}))
    build_model(_opt(tmp_path, RECURRENT, is_train=False, val={'save_img': True}))  # test.py saves them
