"""Mixed-precision training (``train.amp``): every registered arch trains in bfloat16 on a tiny overfit task (finite
steps, falling loss), fp16's gradient scaler handles overflows and resumes exactly, bad values are named."""
import pytest
import torch

import deblurzoo  # noqa: F401
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel
from basicsr.utils.registry import ARCH_REGISTRY
from arch_inputs import expected_shape, make_input
from test_registry import ARCHS, TINY

# the model each arch trains with, and extra train options it needs (default: DeblurModel)
MODELS = {'SARNMulti': 'VideoDeblurModel', 'SARNRecurrent': 'VideoDeblurModel', 'MLFANet': 'VideoDeblurModel',
          'SAPHNet': 'SAPHNetModel'}
TRAIN_EXTRA = {'SAPHNet': {'reward_opt': {'type': 'AdaptiveSamplingRewardLoss'}}}


def _opt(tmp_path, arch, **train):
    exp = tmp_path / 'experiments' / arch
    opt = {
        'name': arch, 'model_type': MODELS.get(arch, 'DeblurModel'), 'scale': 1, 'num_gpu': 0, 'is_train': True,
        'dist': False, 'rank': 0, 'world_size': 1, 'manual_seed': 0, 'auto_resume': False,
        'network_g': {'type': arch, **TINY[arch]},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None, 'experiments_root': str(exp),
                 'models': str(exp / 'models'), 'training_states': str(exp / 'training_states'), 'log': str(exp)},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 5e-3}, 'total_iter': 100, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
                  **TRAIN_EXTRA.get(arch, {})},
    }
    opt['train'].update(train)
    return opt


def _batch(arch, size=16):
    """A task every arch learns in a few steps: the target is the input (its centre frame for window nets) plus
    0.1."""
    net = ARCH_REGISTRY.get(arch)(**TINY[arch])  # the declared frame mode and window length of the tiny net
    torch.manual_seed(0)
    lq = make_input(net, 2, size, size)
    target = lq if expected_shape(net, lq) == tuple(lq.shape) else lq[:, lq.shape[1] // 2]
    return {'lq': lq, 'gt': target + 0.1}


def _losses(model, batch, steps):
    out = []
    for it in range(1, steps + 1):
        model.feed_data(batch)
        model.optimize_parameters(it)
        out.append(sum(v for k, v in model.log_dict.items() if k.startswith('l_pix')))
    return out


@pytest.mark.parametrize('arch', ARCHS)
def test_bf16_training_is_finite_and_its_loss_falls(tmp_path, arch):
    model = build_model(_opt(tmp_path, arch, amp='bf16'))
    batch = _batch(arch)
    autocast = []
    net = model.get_bare_model(model.net_g)
    hook = net.register_forward_pre_hook(
        lambda m, i: autocast.append(torch.is_autocast_enabled('cpu')) if torch.is_grad_enabled() else None)
    losses = _losses(model, batch, 8)
    hook.remove()
    assert len(autocast) == 8 and all(autocast), 'the training forward did not run under autocast'
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert model.output.dtype == torch.float32  # losses see float32
    assert sum(losses[-2:]) / 2 < 0.8 * losses[0], losses
    assert all(torch.isfinite(p).all() for p in net.parameters())


def _fp16_model(tmp_path):
    """A tiny SVDN in fp16 whose summed squared error overflows fp16 gradients at the scaler's initial scale (2^16),
    so the scaler must skip steps and lower its scale."""
    pixel = {'type': 'MSELoss', 'loss_weight': 1.0, 'reduction': 'sum'}
    opt = _opt(tmp_path, 'SVDN', amp='fp16', pixel_opt=pixel)
    opt['train']['optim_g']['lr'] = 1e-4
    return build_model(opt)


def _net_params(model):
    return {k: v.detach().clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}


def test_fp16_scaler_skips_overflowing_steps_and_lowers_its_scale(tmp_path):
    model = _fp16_model(tmp_path)
    batch = _batch('SVDN')
    scaler = model.amp.scaler
    assert scaler is not None and scaler.get_scale() == 65536.0
    before = _net_params(model)
    model.feed_data(batch)
    model.optimize_parameters(1)  # overflows: no update, no FloatingPointError (nan_policy: stop)
    assert scaler.get_scale() == 32768.0
    assert all(torch.equal(v, before[k]) for k, v in _net_params(model).items())
    _losses(model, batch, 10)
    assert scaler.get_scale() < 32768.0
    after = _net_params(model)
    assert any(not torch.equal(v, before[k]) for k, v in after.items())  # real steps were taken
    assert all(torch.isfinite(v).all() for v in after.values())


def test_fp16_resume_restores_the_scaler_exactly(tmp_path):
    """The model's extra training state (what the trainer saves under ``extra`` and hands back on resume) carries
    the scaler through a weights-only state file: the resumed run repeats the uninterrupted one exactly; resumed
    with a fresh scaler it does not."""
    batch = _batch('SVDN')
    first = _fp16_model(tmp_path / 'a')
    _losses(first, batch, 8)
    scale = first.amp.scaler.get_scale()
    assert scale < 65536.0  # a fresh scaler would overflow again and skip steps: the resume below would differ
    state = {'optimizers': [o.state_dict() for o in first.optimizers],
             'schedulers': [s.state_dict() for s in first.schedulers], 'extra': first.extra_training_state()}
    torch.save(state, tmp_path / '8.state')
    state = torch.load(tmp_path / '8.state', weights_only=True)
    assert state['extra']['grad_scaler']['scale'] == scale
    params = _net_params(first)

    def resumed(extra):
        model = _fp16_model(tmp_path / 'b')
        model.get_bare_model(model.net_g).load_state_dict(params)
        BaseModel.resume_training(model, state)  # BasicSR's part: optimizers and schedulers
        model.load_extra_training_state(extra)
        _losses(model, batch, 4)
        return model

    _losses(first, batch, 4)  # the uninterrupted run
    exact = resumed(state['extra'])
    assert exact.amp.scaler.get_scale() == first.amp.scaler.get_scale()
    assert all(torch.equal(v, _net_params(first)[k]) for k, v in _net_params(exact).items())
    fresh = resumed({})
    assert any(not torch.equal(v, _net_params(first)[k]) for k, v in _net_params(fresh).items())


@pytest.mark.parametrize('key,value', [('amp', 'fp32'), ('amp', True), ('amp', ['bf16']), ('channels_last', 'yes'),
                                       ('compile', 'max-autotune')])
def test_bad_values_are_named(tmp_path, key, value):
    with pytest.raises(ValueError, match=rf'train\.{key}.*{value!r}'.replace('[', r'\[').replace(']', r'\]')):
        build_model(_opt(tmp_path, 'SVDN', **{key: value}))


def test_channels_last_and_compile_keep_parameter_names(tmp_path):
    plain = build_model(_opt(tmp_path / 'a', 'SVDN'))
    model = build_model(_opt(tmp_path / 'b', 'SVDN', amp='bf16', channels_last=True, compile={'backend': 'eager'}))
    net = model.get_bare_model(model.net_g)
    assert list(net.state_dict()) == list(plain.get_bare_model(plain.net_g).state_dict())  # checkpoints unchanged
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.dim() == 4)
    losses = _losses(model, _batch('SVDN'), 2)
    assert all(torch.isfinite(torch.tensor(losses)))
