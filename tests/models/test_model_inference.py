"""The models' test path is the inference engine's (the CLI's): ``val.tile`` tiles in test.py as ``--tile`` does in
deblurzoo-infer, and a window net given single images restores them as the CLI does (a one-frame video)."""
import pytest
import torch

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.models import build_model
from deblurzoo.inference import Restorer
from deblurzoo.inference.loader import LoadedModel

SVDN = dict(type='SVDN', num_feat=8, num_conv=1)
MLFA = dict(type='MLFANet', num_frame=3, num_feat=4, num_level=2, num_block=1)


def _opt(tmp_path, network, model_type='DeblurModel', val=None):
    return {
        'name': 'inference_unit', 'model_type': model_type, 'is_train': False, 'num_gpu': 0, 'dist': False,
        'scale': 1, 'network_g': dict(network),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'visualization': str(tmp_path / 'vis')},
        'val': {'save_img': False, **(val or {})},
    }


def _perturbed(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.net_g.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.net_g.eval()


def _test(model, lq):
    model.feed_data({'lq': lq})
    model.test()
    return model.output


def test_val_tile_tiles_the_test_path_as_the_cli_does(tmp_path):
    model = build_model(_opt(tmp_path, SVDN, val={'tile': 48, 'tile_overlap': 16}))
    net = _perturbed(model)
    x = torch.rand(1, 3, 40, 100, generator=torch.Generator().manual_seed(1))
    out = _test(model, x)
    cli = LoadedModel(net, SVDN).restorer(tile=48, tile_overlap=16).image(x)
    assert torch.equal(out, cli)
    with torch.no_grad():
        whole = net(x)
    diff = (out - whole).abs().amax(dim=(0, 1, 2))  # per column; tiles start at 0, 32, 64
    assert diff.max() > 1e-5, 'val.tile did not tile (SVDN sees past the blended quarter of the overlap)'
    assert diff[:16].max() < 1e-5  # far from the first overlap (columns 32-48): what the untiled net gives


def test_val_self_ensemble_and_tile_together_match_the_cli(tmp_path):
    model = build_model(_opt(tmp_path, SVDN, val={'tile': 48, 'tile_overlap': 16, 'self_ensemble': 4}))
    net = _perturbed(model)
    x = torch.rand(1, 3, 40, 72, generator=torch.Generator().manual_seed(2))
    assert torch.equal(_test(model, x), Restorer(net, self_ensemble=4, tile=48, tile_overlap=16).image(x))


def test_a_window_net_given_images_restores_them_as_the_cli_does(tmp_path):
    model = build_model(_opt(tmp_path, MLFA))
    net = _perturbed(model)
    x = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(3))
    out = _test(model, x)
    cli = LoadedModel(net, MLFA).restorer().image(x)
    with torch.no_grad():
        expected = net(x.unsqueeze(1).expand(-1, 3, -1, -1, -1))  # a one-frame video: the window repeats it
    assert out.shape == x.shape
    assert torch.equal(out, cli)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('val,match', [({'tile': 40, 'tile_overlap': 16}, 'val.tile'),
                                       ({'tile': 64, 'tile_overlap': -1}, 'val.tile_overlap'),
                                       ({'tile': 'big'}, 'val.tile')])
def test_bad_tile_options_are_named_when_the_model_is_built(tmp_path, val, match):
    with pytest.raises(ValueError, match=match):
        build_model(_opt(tmp_path, SVDN, val=val))


def test_restorer_refuses_a_video_stage1(tmp_path):
    net = build_network(dict(MLFA)).eval()
    with pytest.raises(ValueError, match='stage 1 must be an image net'):
        Restorer(net, stage1=build_network(dict(MLFA)).eval())


def test_saphnet_validates_with_the_sampling_of_its_training_phase(tmp_path):
    """While pre-training (uniform sampling) the test path samples uniformly too; afterwards greedily (top-N)."""
    network = dict(type='SAPHNet', num_feat=4, num_block=(1, 1, 1), sampler_feat=4)
    opt = _opt(tmp_path, network, 'SAPHNetModel')
    opt['is_train'] = True
    opt['path'].update(models=str(tmp_path / 'models'), training_states=str(tmp_path / 'states'))
    opt['train'] = {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 10,
                    'scheduler': {'type': 'PolyLR', 'total_iter': 10}, 'pretrain_iter': 5,
                    'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                    'reward_opt': {'type': 'AdaptiveSamplingRewardLoss'}}
    model = build_model(opt)
    net = _perturbed(model)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        uniform, greedy = net(x, policy='uniform'), net(x, policy='greedy')
    assert not torch.equal(uniform, greedy)
    model.train_forward_kwargs(1)  # iteration 1: pre-training
    torch.testing.assert_close(_test(model, x), uniform, rtol=0, atol=0)
    model.train_forward_kwargs(6)  # joint training
    torch.testing.assert_close(_test(model, x), greedy, rtol=0, atol=0)
