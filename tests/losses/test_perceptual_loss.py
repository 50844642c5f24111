import deblurzoo  # noqa
import os

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from basicsr.losses import build_loss
from basicsr.utils.registry import LOSS_REGISTRY
from deblurzoo.losses.perceptual_loss import (VGG16_LAYER_NAMES, VGG16_WEIGHTS_ENV, VGG16_WEIGHTS_FILE,
                                              VGGPerceptualLoss, find_vgg16_weights, load_vgg16_features_state_dict)


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """No env var and an empty torchvision cache."""
    monkeypatch.delenv(VGG16_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path


@pytest.fixture(scope='module')
def vgg16_state():
    """State dict of a randomly initialised torchvision VGG16 (built once: about 2 s)."""
    torch.manual_seed(3)
    return torchvision.models.vgg16(weights=None).state_dict()


def _features_state_dict(state, num_layers=31):
    """The 'features.<i>.*' entries of ``state`` for the first ``num_layers`` layers."""
    return {
        key: value
        for key, value in state.items() if key.startswith('features.') and int(key.split('.')[1]) < num_layers
    }


def _images(seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=g), torch.rand(2, 3, size, size, generator=g)


def test_layer_names_match_torchvision_features():
    with torch.device('meta'):
        features = torchvision.models.vgg16(weights=None).features
    assert len(VGG16_LAYER_NAMES) == len(features) == 31
    for name, module in zip(VGG16_LAYER_NAMES, features):
        kind = {'conv': nn.Conv2d, 'relu': nn.ReLU, 'pool': nn.MaxPool2d}[name[:4]]
        assert isinstance(module, kind), name
    assert VGG16_LAYER_NAMES.index('conv3_3') == 14
    assert VGG16_LAYER_NAMES.index('conv3_2') == 12


def test_identical_inputs_zero_and_different_positive():
    loss = VGGPerceptualLoss(pretrained=False)
    x, y = _images()
    assert loss(x, x.clone()).item() == 0.0
    assert loss(x, y).item() > 0.0
    assert loss(x, y).dim() == 0


def test_gradient_reaches_input_but_not_vgg():
    loss = VGGPerceptualLoss(layer='conv2_2', pretrained=False)
    x, y = _images()
    x.requires_grad_()
    y.requires_grad_()
    loss(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum().item() > 0
    assert y.grad is None  # gt features are computed without gradient
    for param in loss.vgg.parameters():
        assert param.requires_grad is False
        assert param.grad is None


def test_layer_selection_changes_channels():
    x, _ = _images()
    net = VGGPerceptualLoss(layer='conv1_2', pretrained=False)
    assert len(net.vgg) == 3
    assert net.features(x).shape == (2, 64, 16, 16)
    net = VGGPerceptualLoss(layer='conv3_3', pretrained=False)
    assert len(net.vgg) == 15 and isinstance(net.vgg[-1], nn.Conv2d)
    assert net.features(x).shape == (2, 256, 4, 4)
    net = VGGPerceptualLoss(layer='pool4', pretrained=False)
    assert isinstance(net.vgg[-1], nn.MaxPool2d)
    assert net.features(x).shape == (2, 512, 1, 1)


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ValueError) as info:
        VGGPerceptualLoss(layer='conv6_1', pretrained=False)
    message = str(info.value)
    assert "'conv6_1'" in message
    for name in ('conv1_1', 'relu3_3', 'conv5_3', 'pool5'):
        assert name in message


def test_unknown_criterion():
    with pytest.raises(ValueError, match='criterion'):
        VGGPerceptualLoss(criterion='l2', pretrained=False)


def test_missing_weights_error_message(no_weights):
    with pytest.raises(FileNotFoundError) as info:
        VGGPerceptualLoss(pretrained=True)
    message = str(info.value)
    assert VGG16_WEIGHTS_FILE in message
    assert 'weights_path' in message and 'perceptual_opt' in message
    assert VGG16_WEIGHTS_ENV in message
    assert 'pretrained: false' in message
    assert os.path.join(str(no_weights / 'torch_home'), 'hub', 'checkpoints', VGG16_WEIGHTS_FILE) in message
    # an explicit path that does not exist is named, with no fallback
    missing = str(no_weights / 'nowhere' / VGG16_WEIGHTS_FILE)
    with pytest.raises(FileNotFoundError, match='weights_path'):
        find_vgg16_weights(missing)
    with pytest.raises(FileNotFoundError) as info:
        VGGPerceptualLoss(weights_path=missing)
    assert missing in str(info.value)


def test_missing_env_file_is_an_error(no_weights, monkeypatch):
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, str(no_weights / 'absent.pth'))
    with pytest.raises(FileNotFoundError) as info:
        find_vgg16_weights()
    assert 'absent.pth' in str(info.value) and VGG16_WEIGHTS_ENV in str(info.value)


def test_load_from_weights_file(no_weights, vgg16_state):
    # torchvision's file format (features.* and classifier.*); the classifier (500 MB) is replaced by small stand-ins
    state = _features_state_dict(vgg16_state)
    state.update({key: torch.zeros(2) for key in vgg16_state if key.startswith('classifier.')})
    path = no_weights / VGG16_WEIGHTS_FILE
    torch.save(state, path)
    loss = VGGPerceptualLoss(layer='conv3_3', pretrained=True, weights_path=str(path))
    assert loss.weights_path == str(path)
    loaded = loss.vgg.state_dict()
    assert set(loaded) == {f'{i}.{p}' for i in (0, 2, 5, 7, 10, 12, 14) for p in ('weight', 'bias')}
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[f'features.{key}'], rtol=0, atol=0)
    assert all(not p.requires_grad for p in loss.vgg.parameters())


def test_load_wrapped_and_features_only_checkpoints(no_weights, monkeypatch, vgg16_state):
    state = _features_state_dict(vgg16_state, num_layers=5)  # only up to pool1: enough for conv1_2
    wrapped = no_weights / 'wrapped.pth'
    torch.save({'params': {f'module.{k}': v for k, v in state.items()}}, wrapped)
    loss = VGGPerceptualLoss(layer='conv1_2', weights_path=str(wrapped))
    torch.testing.assert_close(loss.vgg[2].weight, state['features.2.weight'], rtol=0, atol=0)

    plain = no_weights / 'plain.pth'  # the state dict of vgg16().features itself
    torch.save({'state_dict': {k[len('features.'):]: v for k, v in state.items()}}, plain)
    assert set(load_vgg16_features_state_dict(str(plain))) == {'0.weight', '0.bias', '2.weight', '2.bias'}

    # found through the environment variable, then through torchvision's cache
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, str(plain))
    assert VGGPerceptualLoss(layer='relu1_1').weights_path == str(plain)
    monkeypatch.delenv(VGG16_WEIGHTS_ENV)
    cache = no_weights / 'torch_home' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    torch.save(state, cache / VGG16_WEIGHTS_FILE)
    assert VGGPerceptualLoss(layer='conv1_1').weights_path == str(cache / VGG16_WEIGHTS_FILE)

    # too few layers for the requested one, and a file that is no VGG16
    with pytest.raises(ValueError, match=r'incomplete, missing features\.5\.weight'):
        VGGPerceptualLoss(layer='conv2_1', weights_path=str(wrapped))
    other = no_weights / 'other.pth'
    torch.save({'conv.weight': torch.zeros(1)}, other)
    with pytest.raises(ValueError, match='no VGG16'):
        VGGPerceptualLoss(weights_path=str(other))


def test_half_mse_definition():
    loss = VGGPerceptualLoss(layer='relu2_2', loss_weight=0.01, pretrained=False)
    x, y = _images(seed=5)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    fx = loss.vgg((x - mean) / std)
    fy = loss.vgg((y - mean) / std)
    expected = 0.01 * ((fx - fy)**2).sum() / (2 * fx.numel())  # 1 / (2 N_c) ||phi(L) - phi(S)||^2
    torch.testing.assert_close(loss(x, y), expected)
    l1 = VGGPerceptualLoss(layer='relu2_2', loss_weight=1.0, criterion='l1', pretrained=False)
    l1.vgg.load_state_dict(loss.vgg.state_dict())
    torch.testing.assert_close(l1(x, y), (fx - fy).abs().mean())


def test_range_norm_and_no_input_norm():
    loss = VGGPerceptualLoss(layer='conv1_1', loss_weight=1.0, pretrained=False, use_input_norm=False, range_norm=True)
    x, y = _images(seed=6)
    fx, fy = loss.vgg(x), loss.vgg(y)
    torch.testing.assert_close(loss(2 * x - 1, 2 * y - 1), 0.5 * F.mse_loss(fx, fy))


def test_stays_in_eval_mode():
    loss = VGGPerceptualLoss(pretrained=False)
    assert not loss.training and not loss.vgg.training
    loss.train()
    assert not loss.training and not loss.vgg.training
    assert all(not m.training for m in loss.modules())


def test_mean_std_are_non_persistent_buffers():
    loss = VGGPerceptualLoss(pretrained=False).double()
    assert dict(loss.named_buffers()).keys() == {'mean', 'std'}
    assert loss.mean.dtype == torch.float64
    assert 'mean' not in loss.state_dict()


def test_shape_error():
    loss = VGGPerceptualLoss(layer='conv1_1', pretrained=False)
    with pytest.raises(ValueError, match='same shape'):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_registered_and_buildable():
    assert LOSS_REGISTRY.get('VGGPerceptualLoss') is VGGPerceptualLoss
    loss = build_loss({'type': 'VGGPerceptualLoss', 'pretrained': False})
    assert isinstance(loss, VGGPerceptualLoss)
    assert (loss.layer, loss.loss_weight, loss.criterion) == ('conv3_3', 0.01, 'mse')
