"""Tests parametrized over everything deblurzoo registers into BasicSR's registries (timm's ``test_models.py``).

Names are discovered from the registries, so a new arch, loss, dataset or model is tested the moment it is
registered; it only needs an entry in ``TINY`` / ``LOSS_CASES`` / ``DATASET_CASES`` below (a missing entry fails with
a message saying where to add it); video archs' inputs and outputs are listed in ``arch_inputs.py``.
"""
import math

import pytest
import torch

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.models.video_base_model import VideoBaseModel
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
from arch_inputs import expected_shape, make_input
from deblurzoo.archs.protocol import ArchProtocol, arch_info, declared
from data_factory import make_gopro_tree

REGISTRIES = {'arch': ARCH_REGISTRY, 'loss': LOSS_REGISTRY, 'dataset': DATASET_REGISTRY, 'model': MODEL_REGISTRY}
THIS_FILE = 'tests/test_registry.py'


def mine(reg):
    """Names registered by deblurzoo (not by BasicSR) in ``reg``."""
    return sorted(k for k, v in reg._obj_map.items() if v.__module__.startswith('deblurzoo'))


ARCHS, LOSSES, DATASETS, MODELS = (mine(reg) for reg in REGISTRIES.values())

# ----------------------------------------------------------------------------------------------------- registries


@pytest.mark.parametrize('kind', list(REGISTRIES))
def test_registers_something(kind):
    assert mine(REGISTRIES[kind]), f'deblurzoo registers no {kind}: is deblurzoo/{kind}s/__init__.py importing them?'


@pytest.mark.parametrize('kind,name', [(kind, name) for kind, reg in REGISTRIES.items() for name in mine(reg)])
def test_name_does_not_clash_with_basicsr(kind, name):
    reg = REGISTRIES[kind]
    cls = reg.get(name)
    assert cls.__module__.startswith('deblurzoo'), f'{kind} {name!r} resolves to {cls.__module__}.{cls.__name__}'
    assert cls.__name__ == name, f'{kind} {name!r} is registered under another name than its class ({cls.__name__})'
    # BasicSR registers a clashing name with a '_basicsr' suffix; a BasicSR class of the same name must not exist
    assert f'{name}_basicsr' not in reg._obj_map, f'{kind} {name!r} clashes with BasicSR\'s {name}_basicsr'
    same = [
        f'{v.__module__}.{v.__name__}' for v in reg._obj_map.values()
        if v.__name__ == name and not v.__module__.startswith('deblurzoo')
    ]
    assert not same, f'{kind} {name!r} has the name of a BasicSR class: {same}'


# ---------------------------------------------------------------------------------------------------------- archs

# tiny constructor kwargs per registered arch (every arch must have an entry: see test_arch_has_tiny_kwargs)
TINY = {
    'SVDN': dict(num_feat=8, num_conv=1),
    'SAPHNet': dict(num_feat=4, num_block=(1, 1, 1), sampler_feat=4),
    'DMPHN': dict(num_feat=4, num_block=(1, 1, 1), sampler_feat=4),
    'SARN': dict(num_feat=4, num_block=1),
    'SARNMulti': dict(num_feat=4, num_block=1),
    'SARNRecurrent': dict(num_feat=4, num_block=1, lstm_feat=4),
    'AtrousNet': dict(num_feat=4, num_block=2, block_feat=8, branch_feat=4),
    'MLFANet': dict(num_feat=4, num_level=2, num_block=1),
}


EVAL_SIZES = [(37, 53), (16, 16)]  # odd sizes: archs pad to the multiple they need and crop back


def _tiny(name):
    if name not in TINY:
        pytest.fail(f'add tiny kwargs for {name} to TINY in {THIS_FILE}')
    torch.manual_seed(0)
    return build_network({'type': name, **TINY[name]})


def _input(net, b, h, w):
    torch.manual_seed(1)
    return make_input(net, b, h, w)


def _float_tensors(item):
    """The floating-point tensors in an aux item: a tensor, or lists / dicts of them (e.g. SAPHNet's stage outputs
    and sampling log-probabilities)."""
    if torch.is_tensor(item):
        return [item] if item.is_floating_point() else []
    if isinstance(item, dict):
        item = list(item.values())
    if isinstance(item, (list, tuple)):
        return [t for sub in item for t in _float_tensors(sub)]
    return []


@pytest.mark.parametrize('name', ARCHS)
def test_arch_declares_its_frame_protocol(name):
    cls = ARCH_REGISTRY.get(name)
    proto = declared(cls)
    assert proto is not None, (f'{name} declares no frame protocol: add `protocol = ArchProtocol(...)` to the class '
                               f'(deblurzoo/archs/protocol.py says which)')
    info = arch_info(_tiny(name))
    assert info.mode == proto.mode
    if proto.stream:
        assert 'stream' in dir(cls), f'{name} declares stream=True but has no stream() method'
    if proto.mode == 'window':
        assert info.num_frame >= 1


def test_protocol_refuses_unknown_modes_and_streaming_non_sequence_nets():
    with pytest.raises(ValueError, match='mode'):
        ArchProtocol('video')
    with pytest.raises(ValueError, match='stream'):
        ArchProtocol('image', stream=True)


@pytest.mark.parametrize('name', ARCHS)
def test_arch_has_tiny_kwargs(name):
    assert name in TINY, f'add tiny kwargs for {name} to TINY in {THIS_FILE}'


def test_tiny_entries_are_registered():
    stale = sorted(set(TINY) - set(ARCHS))
    assert not stale, f'TINY in {THIS_FILE} has entries for unregistered archs: {stale}'


@pytest.mark.parametrize('size', EVAL_SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
@pytest.mark.parametrize('name', ARCHS)
def test_arch_eval_forward(name, size):
    net = _tiny(name).eval()
    x = _input(net, 2, *size)
    with torch.no_grad():
        out = net(x)
    assert torch.is_tensor(out), f'{name} in eval mode must return one tensor, got {type(out).__name__}'
    assert tuple(out.shape) == expected_shape(net, x), f'{name}: input {tuple(x.shape)} -> output {tuple(out.shape)}'
    assert torch.isfinite(out).all(), f'{name}: non-finite output'


@pytest.mark.parametrize('name', ARCHS)
def test_arch_returns_the_image_in_every_mode_and_aux_on_request(name):
    """The output convention: ``net(x)`` is the image in train and eval mode (BasicSR's SRModel trains any arch);
    ``net(x, return_aux=True)`` is ``(image, aux)``, ``aux`` a dict of named auxiliary outputs."""
    net = _tiny(name)
    x = _input(net, 1, 16, 16)
    for mode in (True, False):
        net.train(mode)
        with torch.no_grad():
            out = net(x)
            pair = net(x, return_aux=True)
        assert torch.is_tensor(out), f'{name} (train={mode}): net(x) returned {type(out).__name__}, not the image'
        assert isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], dict), \
            f'{name} (train={mode}): net(x, return_aux=True) must return (image, aux dict)'
        assert tuple(pair[0].shape) == tuple(out.shape)


@pytest.mark.parametrize('name', ARCHS)
def test_arch_train_backward_reaches_every_parameter(name):
    net = _tiny(name).train()
    x = _input(net, 2, 37, 53)
    image, aux = net(x, return_aux=True)
    assert tuple(image.shape) == expected_shape(net, x), f'{name} (train): output {tuple(image.shape)}'
    loss = image.mean()
    for item in _float_tensors(aux):
        loss = loss + item.mean()
    assert torch.isfinite(loss), f'{name}: non-finite training loss {loss}'
    loss.backward()
    no_grad = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f'{name}: parameters without gradient: {no_grad}'
    bad_grad = [n for n, p in net.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad_grad, f'{name}: parameters with non-finite gradient: {bad_grad}'


@pytest.mark.parametrize('name', ARCHS)
def test_arch_rejects_unknown_kwarg(name):
    if name not in TINY:
        pytest.fail(f'add tiny kwargs for {name} to TINY in {THIS_FILE}')
    with pytest.raises(TypeError):
        ARCH_REGISTRY.get(name)(**TINY[name], no_such_argument_xyz=1)


@pytest.mark.parametrize('name', ARCHS)
def test_arch_eval_is_deterministic(name):
    net = _tiny(name).eval()
    x = _input(net, 1, 37, 53)
    with torch.no_grad():
        first, second = net(x), net(x)
    assert torch.equal(first, second), f'{name}: two eval forwards differ by {(first - second).abs().max():.3g}'


# --------------------------------------------------------------------------------------------------------- losses


def _image_pair(b=2, size=24):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, size, size, generator=g).requires_grad_()
    gt = torch.rand(b, 3, size, size, generator=g)
    return x, gt


def _offset_flow(b=2, k=5, h=8, w=10):
    """SVDN-like offsets (b, 2k^2, h, w) at half resolution, beyond the margin, and flows (b, 4, 2h, 2w)."""
    g = torch.Generator().manual_seed(0)
    offset = (3 * torch.randn(b, 2 * k * k, h, w, generator=g)).requires_grad_()
    flow = 4 * torch.randn(b, 4, 2 * h, 2 * w, generator=g)
    return offset, flow


def _log_prob_outputs(b=2, size=12):
    """A sampler's log-probabilities (b, 1, s, s) (the input requiring grad), stage outputs, target, pixels drawn and
    budget; no baseline, so the surrogate -mean(reward * log_prob) is negative (both factors are)."""
    g = torch.Generator().manual_seed(0)
    log_prob = torch.log(torch.rand(b, 1, size, size, generator=g) * 0.9 + 0.05).requires_grad_()
    outputs = [torch.rand(b, 3, size, size, generator=g) for _ in range(2)]
    target = torch.rand(b, 3, size, size, generator=g)
    return log_prob, outputs, target, torch.tensor([40, 20]), torch.tensor([36, 36])


# name -> (build kwargs, make_inputs() -> inputs, the first one requiring grad)
LOSS_CASES = {
    'PositionLoss': (dict(kernel_size=5, margin=1.0), _offset_flow),
    'VGGPerceptualLoss': (dict(pretrained=False), _image_pair),
    'AdaptiveSamplingRewardLoss': (dict(baseline='none'), _log_prob_outputs),
}


def _loss_case(name):
    if name not in LOSS_CASES:
        pytest.fail(f'add a case for {name} to LOSS_CASES in {THIS_FILE}')
    return LOSS_CASES[name]


def _build_loss(name, kwargs, **extra):
    torch.manual_seed(0)  # losses with random parts (VGG without weights) are built identically
    return build_loss({'type': name, **kwargs, **extra})


@pytest.mark.parametrize('name', LOSSES)
def test_loss_has_case(name):
    _loss_case(name)


@pytest.mark.parametrize('name', LOSSES)
def test_loss_finite_scalar_with_gradient(name):
    kwargs, make_inputs = _loss_case(name)
    loss_fn = _build_loss(name, kwargs)
    inputs = make_inputs()
    loss = loss_fn(*inputs)
    assert torch.is_tensor(loss) and loss.dim() == 0, f'{name}: expected a scalar tensor, got {loss!r}'
    assert torch.isfinite(loss), f'{name}: loss {loss.item()}'
    # surrogate objectives (policy gradients) declare ``signed = True``: their value may be negative
    assert getattr(loss_fn, 'signed', False) or loss.item() >= 0, f'{name}: negative loss {loss.item()}'
    loss.backward()
    grad = inputs[0].grad
    assert grad is not None, f'{name}: no gradient reaches the first input'
    assert torch.isfinite(grad).all(), f'{name}: non-finite gradient on the first input'
    assert grad.abs().sum() > 0, f'{name}: the gradient on the first input is all zero'


@pytest.mark.parametrize('name', LOSSES)
def test_loss_weight_scales_linearly(name):
    kwargs, make_inputs = _loss_case(name)
    kwargs = {k: v for k, v in kwargs.items() if k != 'loss_weight'}
    one = _build_loss(name, kwargs, loss_weight=0.5)(*make_inputs())
    two = _build_loss(name, kwargs, loss_weight=1.0)(*make_inputs())
    assert one.item() != 0, f'{name}: the case gives a zero loss; make its inputs differ more'
    assert math.isclose(two.item(), 2 * one.item(), rel_tol=1e-5), f'{name}: weight 0.5 -> {one}, 1.0 -> {two}'


# ------------------------------------------------------------------------------------------------------- datasets

GOPRO_SIZE = (40, 48)  # (h, w) of data_factory's frames


def _gopro_cases(tmp_path):
    root = str(tmp_path / 'GOPRO_Large')
    make_gopro_tree(root, 'train', size=GOPRO_SIZE, with_flow=True)
    make_gopro_tree(root, 'test', size=GOPRO_SIZE)
    common = dict(
        type='GoProDataset', dataroot=root, io_backend=dict(type='disk'), num_worker_per_gpu=0, batch_size_per_gpu=2)
    train = dict(
        common,
        name='gopro_train',
        phase='train',
        split='train',
        use_flow=True,
        gt_size=32,
        use_hflip=True,
        use_rot=True,
        use_channel_permute=True)
    test = dict(common, name='gopro_test', phase='test', split='test')
    return [(train, (32, 32)), (test, GOPRO_SIZE)]


def _hide_cases(tmp_path):
    from data_factory import make_hide_tree
    root = make_hide_tree(str(tmp_path / 'HIDE_dataset'), size=GOPRO_SIZE)
    common = dict(
        type='HIDEDataset', dataroot=root, io_backend=dict(type='disk'), num_worker_per_gpu=0, batch_size_per_gpu=2)
    train = dict(common, name='hide_train', phase='train', split='train', gt_size=32, use_hflip=True, use_rot=True)
    test = dict(common, name='hide_test', phase='test', split='test', subset='all')
    return [(train, (32, 32)), (test, GOPRO_SIZE)]


def _realblur_cases(tmp_path):
    from data_factory import make_realblur_tree
    root = str(tmp_path / 'RealBlur')
    for variant in ('J', 'R'):
        make_realblur_tree(root, variant, size=GOPRO_SIZE)
    common = dict(
        type='RealBlurDataset', dataroot=root, io_backend=dict(type='disk'), num_worker_per_gpu=0, batch_size_per_gpu=2)
    train = dict(common, name='realblur_j_train', phase='train', variant='J', split='train', gt_size=32, use_hflip=True)
    test_j = dict(common, name='realblur_j_test', phase='test', variant='J', split='test')
    test_r = dict(common, name='realblur_r_test', phase='test', variant='R', split='test')
    return [(train, (32, 32)), (test_j, GOPRO_SIZE), (test_r, GOPRO_SIZE)]


def _dvd_cases(tmp_path):
    """DVD clips of 3 frames: lq and gt (3, 3, h, w)."""
    from data_factory import make_dvd_tree
    root = make_dvd_tree(str(tmp_path / 'DVD'), frames=4, size=GOPRO_SIZE)
    common = dict(type='DVDDataset', dataroot=root, num_frame=3, num_worker_per_gpu=0, batch_size_per_gpu=2)
    train = dict(common, name='dvd_train', phase='train', gt_size=32, use_hflip=True, use_rot=True,
                 use_channel_permute=True, random_reverse=True)
    return [(train, (32, 32)), (dict(common, name='dvd_val', phase='val'), GOPRO_SIZE)]


def _dvd_test_cases(tmp_path):
    """Whole DVD test sequences: lq and gt (T, 3, H, W)."""
    from data_factory import make_dvd_tree
    root = make_dvd_tree(str(tmp_path / 'DVD'), frames=3, size=GOPRO_SIZE)
    common = dict(type='DVDTestDataset', dataroot=root, num_worker_per_gpu=0, batch_size_per_gpu=1)
    return [(dict(common, name='dvd_test', phase='test'), GOPRO_SIZE),
            (dict(common, name='dvd_train_seqs', phase='val', partition='train', max_frames=2), GOPRO_SIZE)]


def _reds_cases(tmp_path):
    """REDS clips of 3 frames: lq and gt (3, 3, h, w); colour-jittered in training."""
    from data_factory import make_reds_tree
    root = make_reds_tree(str(tmp_path / 'REDS'), num_frames=4, size=GOPRO_SIZE)
    common = dict(type='REDSDeblurDataset', dataroot_lq=f'{root}/train_blur', dataroot_gt=f'{root}/train_sharp',
                  num_frame=3, num_worker_per_gpu=0, batch_size_per_gpu=2)
    train = dict(common, name='reds_train', phase='train', gt_size=32, use_hflip=True, use_rot=True,
                 random_reverse=True, color_jitter=dict(brightness=0.05, contrast=0.05, saturation=0.05, hue=0.02))
    return [(train, (32, 32)), (dict(common, name='reds_val', phase='val'), GOPRO_SIZE)]


def _reds_test_cases(tmp_path):
    """Whole REDS validation clips: lq and gt (T, 3, H, W)."""
    from data_factory import make_reds_tree
    root = make_reds_tree(str(tmp_path / 'REDS'), num_frames=3, size=GOPRO_SIZE, split='val')
    common = dict(type='REDSDeblurTestDataset', dataroot_lq=f'{root}/val_blur', dataroot_gt=f'{root}/val_sharp',
                  num_worker_per_gpu=0, batch_size_per_gpu=1)
    return [(dict(common, name='reds_val', phase='val'), GOPRO_SIZE),
            (dict(common, name='reds_val_short', phase='test', max_frames=2), GOPRO_SIZE)]


def _synth_cases(tmp_path):
    """Blur synthesised from sharp frames: a GoPro tree's sharp folders are clips of frames."""
    make_gopro_tree(str(tmp_path / 'sharp'), 'train', size=GOPRO_SIZE)
    common = dict(type='MotionBlurSynthDataset', dataroot=str(tmp_path / 'sharp'), num_worker_per_gpu=0,
                  batch_size_per_gpu=2, num_samples=4)
    return [(dict(common, name='synth_train', phase='train', gt_size=32, use_flow=True, use_hflip=True), (32, 32)),
            (dict(common, name='synth_val', phase='val'), GOPRO_SIZE)]


# name -> make_cases(tmp_path) -> [(dataset opt, expected (h, w) of a sample)]; train phases crop to gt_size
DATASET_CASES = {
    'GoProDataset': _gopro_cases,
    'HIDEDataset': _hide_cases,
    'RealBlurDataset': _realblur_cases,
    'DVDDataset': _dvd_cases,
    'DVDTestDataset': _dvd_test_cases,
    'REDSDeblurDataset': _reds_cases,
    'REDSDeblurTestDataset': _reds_test_cases,
    'MotionBlurSynthDataset': _synth_cases,
}


def _dataset_cases(name, tmp_path):
    if name not in DATASET_CASES:
        pytest.fail(f'add a case for {name} to DATASET_CASES in {THIS_FILE}')
    cases = DATASET_CASES[name](tmp_path)
    assert cases, f'DATASET_CASES[{name!r}] made no options'
    return cases


def _check_sample(where, sample, size):
    for key in ('lq', 'gt'):
        assert key in sample, f'{where}: sample has no {key!r} (keys: {sorted(sample)})'
        value = sample[key]
        assert torch.is_tensor(value) and value.is_floating_point(), f'{where}: {key} is {type(value).__name__}'
        assert value.min() >= 0 and value.max() <= 1, f'{where}: {key} outside [0, 1]'
    assert sample['lq'].shape == sample['gt'].shape, f'{where}: lq {sample["lq"].shape} vs gt {sample["gt"].shape}'
    assert tuple(sample['lq'].shape[-2:]) == tuple(size), f'{where}: lq {tuple(sample["lq"].shape)}, expected {size}'
    assert 'lq_path' in sample, f'{where}: sample has no lq_path'


@pytest.mark.parametrize('name', DATASETS)
def test_dataset_builds_and_loads(name, tmp_path):
    for opt, size in _dataset_cases(name, tmp_path):
        where = f"{name} ({opt['phase']})"
        dataset = build_dataset(dict(opt))
        assert type(dataset).__name__ == name
        assert len(dataset) > 0, f'{where}: empty dataset'
        sample = dataset[0]
        _check_sample(where, sample, size)
        if opt['phase'] == 'train':
            assert size == (opt['gt_size'], ) * 2, f'{where}: expected size must be the crop size'
        if opt.get('use_flow'):
            assert 'flow' in sample, f'{where}: use_flow is set but the sample has no flow'
            assert tuple(sample['flow'].shape[-2:]) == tuple(size), f"{where}: flow {tuple(sample['flow'].shape)}"
            assert torch.isfinite(sample['flow']).all(), f'{where}: non-finite flow'
        loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=0)
        batch = next(iter(loader))
        batch_size = opt['batch_size_per_gpu'] if opt['phase'] == 'train' else 1
        assert batch['lq'].shape == (batch_size, *sample['lq'].shape), f"{where}: batch {tuple(batch['lq'].shape)}"
        assert batch['gt'].shape == batch['lq'].shape
        assert len(batch['lq_path']) == batch_size


# --------------------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize('name', MODELS)
def test_model_is_basicsr_model(name):
    cls = MODEL_REGISTRY.get(name)
    assert issubclass(cls, BaseModel), f'{name} is not a BasicSR BaseModel'
    assert issubclass(cls, (SRModel, VideoBaseModel)), f'{name} subclasses neither SRModel nor VideoBaseModel'
