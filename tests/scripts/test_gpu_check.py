"""scripts/gpu_check.py in its CPU mode (``--device cpu --quick``): every section's code path runs and writes its
report; a section stopped by its time limit keeps the report readable and says so."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from data_factory import load_script

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
def test_quick_cpu_run_writes_every_section(tmp_path):
    out = tmp_path / 'report'
    run = subprocess.run([sys.executable, 'scripts/gpu_check.py', '--device', 'cpu', '--quick', '--archs', 'SVDN',
                          'SARNMulti', '--options', 'train_svdn_demo.yml', '--out', str(out), '--limits',
                          'precision=300', 'latency=300', 'train=300', 'torchrun=300'],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads((tmp_path / 'report.json').read_text())
    sections = data['sections']
    assert {name: sec['status'] for name, sec in sections.items()} == {name: 'done' for name in
                                                                      load_script('gpu_check').SECTIONS}
    precision = sections['precision']['rows']
    assert len(precision) == 6 and all(r['finite_out'] and r['finite_grad'] for r in precision), precision
    assert all(r['grad_rel_diff'] < 0.1 for r in precision if r['dtype'] != 'fp32'), precision
    latency = sections['latency']['rows']
    assert len(latency) == 8 and all(r.get('finite') for r in latency), latency
    for row in sections['deform']['rows']:  # every backend agrees with torchvision in float64, all five gradients
        assert max(row[k] for k in ('out', 'input', 'offset', 'mask', 'weight', 'bias')) < 1e-5, row
    train, = sections['train']['rows']
    assert train['finite'] and train['amp'] == 'bf16' and train['it_per_s'] > 0, train
    torchrun, = sections['torchrun']['rows']
    assert torchrun['returncode'] == 0 and torchrun['reached_iter_4'], torchrun
    text = (tmp_path / 'report.md').read_text()
    assert all(f'## {name}' in text for name in sections)


def test_a_section_stopped_by_its_limit_keeps_the_report(tmp_path):
    gpu_check = load_script('gpu_check')
    out = tmp_path / 'report'
    gpu_check.main(['--device', 'cpu', '--quick', '--archs', 'SVDN', '--sections', 'env', 'latency', '--limits',
                    'latency=0.05', '--out', str(out)])
    sections = json.loads((tmp_path / 'report.json').read_text())['sections']
    assert sections['env']['status'] == 'done' and sections['env']['rows'][0]['torch']
    assert sections['latency']['status'].startswith('stopped at its time limit'), sections['latency']
    assert '## latency' in (tmp_path / 'report.md').read_text()
