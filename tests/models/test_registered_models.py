"""Every model deblurzoo registers, built from a tiny option: one training step and one validation pass.

Names come from BasicSR's MODEL_REGISTRY, so a new model is tested the moment it is registered; it needs an entry in
``MODEL_CASES`` (a missing one fails with a message saying where to add it). The training step must change the
network's parameters (and only the trainable ones: a two-stage model's stage 1 stays as loaded) and produce every loss
term the model is for, finite; the validation pass must score every validation image with a finite PSNR.
"""
import pytest
import torch

import deblurzoo  # noqa: F401  (registers everything)
from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.registry import MODEL_REGISTRY
from data_factory import DVD_TRAIN_SEQS, make_dvd_tree, make_gopro_tree
from test_registry import TINY

MODELS = sorted(k for k, v in MODEL_REGISTRY._obj_map.items() if v.__module__.startswith('deblurzoo'))
THIS_FILE = 'tests/models/test_registered_models.py'
SIZE = (24, 32)  # (h, w) of training crops and validation frames
STAGE1 = dict(type='AtrousNet', **TINY['AtrousNet'])

# tiny constructor arguments: the registry test's (TINY)
# name -> network_g, data ('image' or 'video'), extra train options, loss terms the step must produce, and
# whether the batch carries flows / the target is the centre frame / a stage 1 is needed
MODEL_CASES = {
    'DeblurModel': dict(network=dict(type='SARN', **TINY['SARN']), data='image', losses={'l_pix'}),
    'SVDNModel': dict(network=dict(type='SVDN', **TINY['SVDN']), data='image', flow=True,
                      train={'position_opt': {'type': 'PositionLoss', 'loss_weight': 0.01}},
                      losses={'l_pix', 'l_position'}),
    'SAPHNetModel': dict(network=dict(type='SAPHNet', **TINY['SAPHNet']),
                         data='image', train={'reward_opt': {'type': 'AdaptiveSamplingRewardLoss'}},
                         losses={'l_pix', 'l_pix_stage1', 'l_pix_stage2', 'l_reward_1', 'l_reward_2'}),
    'VideoDeblurModel': dict(network=dict(type='SARNRecurrent', **TINY['SARNRecurrent']), data='video',
                             losses={'l_pix'}),
    'TwoStageVideoModel': dict(network=dict(type='MLFANet', **TINY['MLFANet'], num_frame=3),
                               data='video', centre=True, stage1=True, losses={'l_pix'}),
}


def _case(name):
    if name not in MODEL_CASES:
        pytest.fail(f'add a case for {name} to MODEL_CASES in {THIS_FILE}')
    return MODEL_CASES[name]


def _validation_set(tmp_path, data):
    if data == 'image':
        root = make_gopro_tree(str(tmp_path / 'GOPRO_Large'), 'test', seqs=('GOPR0001_00_00', ), frames=1, size=SIZE)
        opt = dict(type='GoProDataset', dataroot=root, split='test')
    else:
        root = make_dvd_tree(str(tmp_path / 'DVD'), seqs=DVD_TRAIN_SEQS, frames=2, size=SIZE)
        opt = dict(type='DVDTestDataset', dataroot=root, partition='train')
    return dict(opt, name='val', phase='val', io_backend=dict(type='disk'), num_worker_per_gpu=0,
                batch_size_per_gpu=1)


def _opt(tmp_path, name, case):
    opt = {
        'name': f'registered_{name}', 'model_type': name, 'is_train': True, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'scale': 1, 'network_g': dict(case['network']),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states'),
                 'visualization': str(tmp_path / 'vis')},
        'datasets': {'train': {'use_flow': bool(case.get('flow'))}},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'PolyLR', 'total_iter': 10}, 'total_iter': 10,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, **case.get('train', {})},
        'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
    }
    if case.get('stage1'):
        torch.manual_seed(1)
        path = str(tmp_path / 'stage1.pth')
        torch.save({'params': build_network(dict(STAGE1)).state_dict()}, path)
        opt['network_stage1'] = dict(STAGE1)
        opt['path']['pretrain_network_stage1'] = path
    return opt


def _batch(case):
    g = torch.Generator().manual_seed(0)
    h, w = SIZE
    if case['data'] == 'image':
        lq = torch.rand(2, 3, h, w, generator=g)
        batch = {'lq': lq, 'gt': (lq + 0.1 * torch.rand(lq.shape, generator=g)).clamp(0, 1)}
    else:
        lq = torch.rand(1, 3, 3, h, w, generator=g)
        gt = (lq + 0.1 * torch.rand(lq.shape, generator=g)).clamp(0, 1)
        batch = {'lq': lq, 'gt': gt[:, 1] if case.get('centre') else gt}
    if case.get('flow'):
        batch['flow'] = 2 * torch.randn(2, 4, h, w, generator=g)
    return batch


@pytest.mark.parametrize('name', MODELS)
def test_model_has_a_case(name):
    _case(name)


def test_cases_are_registered_models():
    stale = sorted(set(MODEL_CASES) - set(MODELS))
    assert not stale, f'MODEL_CASES in {THIS_FILE} has entries for unregistered models: {stale}'


@pytest.mark.parametrize('name', MODELS)
def test_model_trains_one_step_and_validates(name, tmp_path):
    case = _case(name)
    torch.manual_seed(0)
    model = build_model(_opt(tmp_path, name, case))
    assert type(model).__name__ == name
    trained = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    frozen = {k: v.clone() for k, v in model.net_stage1.state_dict().items()} if case.get('stage1') else {}
    model.feed_data(_batch(case))
    model.optimize_parameters(1)
    missing = case['losses'] - set(model.log_dict)
    assert not missing, f'{name}: the training step produced no {sorted(missing)} (got {sorted(model.log_dict)})'
    bad = {k: v for k, v in model.log_dict.items() if not torch.isfinite(torch.as_tensor(v))}
    assert not bad, f'{name}: non-finite loss terms {bad}'
    changed = [k for k, v in model.net_g.state_dict().items() if not torch.equal(v, trained[k])]
    assert changed, f'{name}: one training step left every parameter of network_g unchanged'
    if frozen:
        assert all(torch.equal(v, frozen[k]) for k, v in model.net_stage1.state_dict().items()), 'stage 1 trained'


    val_opt = _validation_set(tmp_path, case['data'])
    dataset = build_dataset(dict(val_opt))
    loader = build_dataloader(dataset, val_opt, num_gpu=0, dist=False, sampler=None, seed=0)
    model.validation(loader, current_iter=1, tb_logger=None, save_img=False)
    best = model.best_metric_results['val']['psnr']
    assert best['iter'] == 1, f'{name}: the validation pass recorded no PSNR ({best})'
    assert 0 < best['val'] < 100 and torch.isfinite(torch.tensor(best['val'])), f'{name}: PSNR {best["val"]}'
    assert model.net_g.training, f'{name}: validation must hand the network back in training mode'


def test_svdn_dcn_lr_mul_trains_the_deformable_neck_at_its_own_rate(tmp_path):
    """``train.dcn_lr_mul`` (EDVR's key): the neck's parameters -- offset/mask predictors and deformable convs -- in
    their own group at lr x mul, every other parameter at lr, none twice or missing; the scheduler decays both."""
    case = MODEL_CASES['SVDNModel']
    opt = _opt(tmp_path, 'SVDNModel', dict(case, train=dict(case['train'], dcn_lr_mul=0.1)))
    model = build_model(opt)
    rest, neck = model.optimizer_g.param_groups
    assert rest['lr'] == pytest.approx(1e-3) and neck['lr'] == pytest.approx(1e-4)
    names = {id(p): n for n, p in model.net_g.named_parameters()}
    assert {names[id(p)].split('.')[0] for p in neck['params']} == {'neck'}
    assert any('conv_ow2' in names[id(p)] for p in neck['params'])
    assert not any(names[id(p)].startswith('neck.') for p in rest['params'])
    assert len(rest['params']) + len(neck['params']) == len(list(model.net_g.parameters()))
    model.update_learning_rate(5)
    lr_rest, lr_neck = model.get_current_learning_rate()
    assert lr_neck == pytest.approx(0.1 * lr_rest) and lr_rest < 1e-3


@pytest.mark.parametrize('value, network, message', [
    (0, {}, 'dcn_lr_mul must be a number > 0'),
    ('fast', {}, 'dcn_lr_mul must be a number > 0'),
    (float('inf'), {}, 'dcn_lr_mul must be a number > 0'),
    (0.1, {'deform': False}, 'no deformable neck'),
])
def test_svdn_dcn_lr_mul_bad_values_are_named(tmp_path, value, network, message):
    case = MODEL_CASES['SVDNModel']
    case = dict(case, network=dict(case['network'], **network), train={'dcn_lr_mul': value})
    with pytest.raises(ValueError, match=message):
        build_model(_opt(tmp_path, 'SVDNModel', case))
