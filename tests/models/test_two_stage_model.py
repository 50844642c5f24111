"""TwoStageVideoModel in-process: a frozen stage 1 from a checkpoint pre-deblurs every frame stage 2 trains and tests
on (nothing written to disk), is never trained or saved with stage 2, and its options fail early and by name."""
import os

import pytest
import torch

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.data.data_util import generate_frame_indices
from deblurzoo.training import build_model  # the trainer extension's builder: checked network loading

STAGE1 = dict(type='AtrousNet', num_feat=4, num_block=1, block_feat=8, branch_feat=4)
STAGE2 = dict(type='MLFANet', num_feat=4, num_level=2, num_block=1)


def _randomise(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net


@pytest.fixture
def stage1_ckpt(tmp_path):
    net = _randomise(build_network(STAGE1), 0)
    path = str(tmp_path / 'stage1.pth')
    torch.save({'params': net.state_dict()}, path)
    return path, net.eval()


def _opt(tmp_path, ckpt, is_train=True, val=None):
    return {
        'name': 'two_stage_unit', 'model_type': 'TwoStageVideoModel', 'is_train': is_train, 'num_gpu': 0,
        'dist': False, 'scale': 1, 'network_g': dict(STAGE2), 'network_stage1': dict(STAGE1),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'pretrain_network_stage1': ckpt, 'models': str(tmp_path / 'models'),
                 'training_states': str(tmp_path / 'states'), 'visualization': str(tmp_path / 'vis')},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-2},
                  'scheduler': {'type': 'PolyLR', 'total_iter': 10}, 'total_iter': 10,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}, **(val or {})},
    }


def _clip(t=3, seed=1):
    return torch.rand(2, t, 3, 16, 20, generator=torch.Generator().manual_seed(seed))


def test_training_step_runs_stage2_on_stage1_outputs_and_keeps_stage1_frozen(tmp_path, stage1_ckpt):
    path, stage1 = stage1_ckpt
    model = build_model(_opt(tmp_path, path))
    assert not any(p.requires_grad for p in model.net_stage1.parameters())
    before1 = {k: v.clone() for k, v in model.net_stage1.state_dict().items()}
    before2 = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    lq = _clip()
    seen = []
    model.net_g.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    model.feed_data({'lq': lq, 'gt': torch.rand(2, 3, 16, 20)})
    model.optimize_parameters(1)
    with torch.no_grad():
        expected = stage1(lq.flatten(0, 1)).view(lq.shape)
    torch.testing.assert_close(seen[0], expected)
    assert not model.net_stage1.training, 'stage 1 must stay in eval mode'
    assert all(torch.equal(v, before1[k]) for k, v in model.net_stage1.state_dict().items())
    assert any(not torch.equal(v, before2[k]) for k, v in model.net_g.state_dict().items())
    assert torch.equal(model.net_stage1.state_dict()['out.weight'], stage1.state_dict()['out.weight'])


def test_test_restores_each_frame_from_stage1_outputs_of_its_window(tmp_path, stage1_ckpt):
    path, stage1 = stage1_ckpt
    model = build_model(_opt(tmp_path, path, is_train=False))
    _randomise(model.net_g, 1)
    lq = _clip(t=5)[:1]
    model.feed_data({'lq': lq})
    model.test()
    with torch.no_grad():
        pre = stage1(lq[0]).unsqueeze(0)
        net = model.net_g.eval()
        expected = torch.stack([net(pre[:, generate_frame_indices(i, 5, 3, 'replicate')]) for i in range(5)], 1)
    torch.testing.assert_close(model.output, expected)


def test_self_ensemble_applies_to_both_stages(tmp_path, stage1_ckpt):
    path, _ = stage1_ckpt
    model = build_model(_opt(tmp_path, path, is_train=False, val={'self_ensemble': 4}))
    _randomise(model.net_g, 1)
    calls = {'stage1': 0, 'stage2': 0}
    model.net_stage1.register_forward_hook(lambda *a: calls.__setitem__('stage1', calls['stage1'] + 1))
    model.net_g.register_forward_hook(lambda *a: calls.__setitem__('stage2', calls['stage2'] + 1))
    model.feed_data({'lq': _clip(t=3)[:1]})
    model.test()
    assert calls == {'stage1': 4 * 3, 'stage2': 4 * 3}  # 3 frames and 3 windows, 4 transforms each


def test_stage1_runs_frames_as_images_whatever_the_video_options(tmp_path, stage1_ckpt):
    """val.per_frame / flip_seq shape how stage 2 is run (restore()), never stage 1."""
    path, stage1 = stage1_ckpt
    model = build_model(_opt(tmp_path, path, is_train=False, val={'per_frame': True, 'flip_seq': True}))
    lq = _clip(t=4)
    with torch.no_grad():
        torch.testing.assert_close(model.stage1(lq), stage1(lq.flatten(0, 1)).view(lq.shape))


def test_checkpoints_hold_stage2_only(tmp_path, stage1_ckpt):
    path, _ = stage1_ckpt
    model = build_model(_opt(tmp_path, path))
    os.makedirs(tmp_path / 'models')
    model.save_network(model.net_g, 'net_g', 1)
    saved = torch.load(tmp_path / 'models' / 'net_g_1.pth', weights_only=True)['params']
    assert set(saved) == set(model.net_g.state_dict())


def test_missing_stage1_options_are_named(tmp_path, stage1_ckpt):
    path, _ = stage1_ckpt
    opt = _opt(tmp_path, path)
    del opt['network_stage1']
    with pytest.raises(ValueError, match='network_stage1'):
        build_model(opt)
    with pytest.raises(ValueError, match='pretrain_network_stage1'):
        build_model(_opt(tmp_path, None))


def test_wrong_stage1_checkpoint_fails_when_built(tmp_path, stage1_ckpt):
    path, _ = stage1_ckpt
    opt = _opt(tmp_path, path)
    opt['network_stage1'] = dict(STAGE1, block_feat=16)
    with pytest.raises(RuntimeError, match=r'stage1\.pth \[\'params\'\] does not fit AtrousNet .*shape mismatches'):
        build_model(opt)
