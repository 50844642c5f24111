"""scripts/show_sampling.py (the picture of the sampled pixels) and scripts/model_cost.py on tiny models."""
import cv2
import pytest
import torch
import yaml

import deblurzoo  # noqa: F401  (registers everything; patches BasicSR first)
from basicsr.archs import build_network
from deblurzoo.inference import InferenceError
from data_factory import load_script, make_gopro_tree

TINY = {'type': 'SAPHNet', 'num_feat': 4, 'num_block': [1, 1, 1], 'sampler_feat': 4}


def _test_option(tmp_path, network, checkpoint):
    opt = {'name': 'x', 'model_type': 'SAPHNetModel', 'network_g': network,
           'path': {'pretrain_network_g': str(checkpoint), 'param_key_g': 'params', 'strict_load_g': True}}
    path = tmp_path / 'test_x.yml'
    path.write_text(yaml.safe_dump(opt))
    return str(path)


def test_show_sampling_writes_the_panels_and_reports_the_hard_pixels(tmp_path, capsys):
    make_gopro_tree(str(tmp_path / 'data'), 'test', seqs=('GOPR0001_00_00', ), frames=1, size=(40, 48))
    image = next((tmp_path / 'data' / 'test' / 'GOPR0001_00_00' / 'blur').glob('*.png'))
    torch.manual_seed(0)
    ckpt = tmp_path / 'net.pth'
    torch.save({'params': build_network(dict(TINY)).state_dict()}, ckpt)
    out = tmp_path / 'sampling.png'
    load_script('show_sampling').main(['-opt', _test_option(tmp_path, TINY, ckpt), '--image', str(image),
                                       '--out', str(out)])
    panels = cv2.imread(str(out))
    assert panels.shape == (40 * 6, 48, 3)  # input, stages 1-3, P of stages 2 and 3
    printed = capsys.readouterr().out
    assert 'stage 3 level 2: 120 pixels' in printed  # the 10 x 12 lattice's count at level 2 of 40 x 48
    assert 'in the hardest quarter' in printed  # the sharp frame was found next to the blurry one


def test_show_sampling_errors_name_the_problem(tmp_path):
    script = load_script('show_sampling')
    with pytest.raises(InferenceError, match='pretrain_network_g'):
        script.load_net(_test_option(tmp_path, TINY, tmp_path / 'missing.pth'))
    ckpt = tmp_path / 'net.pth'
    torch.save({'params_ema': build_network(dict(TINY)).state_dict()}, ckpt)
    with pytest.raises(InferenceError, match='param_key_g'):
        script.load_net(_test_option(tmp_path, TINY, ckpt))
    uniform = dict(TINY, sampling='uniform')
    torch.save({'params': build_network(dict(uniform)).state_dict()}, ckpt)
    with pytest.raises(ValueError, match='does not sample adaptively'):
        script.load_net(_test_option(tmp_path, uniform, ckpt))


def test_show_sampling_reports_errors_and_never_replaces_its_inputs(tmp_path, capsys):
    make_gopro_tree(str(tmp_path / 'data'), 'test', seqs=('GOPR0001_00_00', ), frames=1, size=(40, 48))
    image = next((tmp_path / 'data' / 'test' / 'GOPR0001_00_00' / 'blur').glob('*.png'))
    ckpt = tmp_path / 'net.pth'
    torch.save({'params': build_network(dict(TINY)).state_dict()}, ckpt)
    opt = _test_option(tmp_path, TINY, ckpt)
    script = load_script('show_sampling')
    before = image.read_bytes(), open(opt, 'rb').read()
    for out in (image, opt):
        assert script.main(['-opt', opt, '--image', str(image), '--out', str(out)]) == 1
        assert 'is an input; not overwriting it' in capsys.readouterr().err
    assert (image.read_bytes(), open(opt, 'rb').read()) == before
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG not really')
    assert script.main(['-opt', opt, '--image', str(broken), '--out', str(tmp_path / 'o.png')]) == 1
    assert str(broken) in capsys.readouterr().err
    assert script.main(['-opt', _test_option(tmp_path, TINY, tmp_path / 'missing.pth'), '--image', str(image),
                        '--out', str(tmp_path / 'o.png')]) == 1
    assert 'pretrain_network_g' in capsys.readouterr().err
    assert not (tmp_path / 'o.png').exists()


def test_model_cost_prints_both_policies(capsys):
    load_script('model_cost').main(['--arch', 'DMPHN', '--size', '32', '32', '--kwargs',
                                    '{"num_feat": 4, "num_block": [1, 1, 1], "sampler_feat": 4}'])
    printed = capsys.readouterr().out
    assert ' parameters (' in printed and 'MB float32)' in printed
    assert '(uniform sampling)' in printed and 'adaptive / uniform' in printed


@pytest.mark.parametrize('arch,frames', [('SARNMulti', 5), ('SARNRecurrent', 3)])
def test_model_cost_counts_video_archs_per_frame(arch, frames, capsys):
    kwargs = '{"num_feat": 4, "num_block": 1}'
    load_script('model_cost').main(['--arch', arch, '--size', '16', '16', '--kwargs', kwargs, '--frames', str(frames)])
    printed = capsys.readouterr().out
    assert 'G MACs per frame at 16x16' in printed, printed
