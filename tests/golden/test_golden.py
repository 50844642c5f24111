"""Every registered arch gives the recorded outputs through every inference path and frame mode
(``make_golden.py`` records them and says how to re-record an arch whose behaviour changed on purpose)."""
import numpy as np
import pytest
import torch

import make_golden

CASES = make_golden.cases()


@pytest.fixture(scope='module')
def recorded():
    return make_golden.load()


def test_every_registered_arch_has_cases():
    from basicsr.utils.registry import ARCH_REGISTRY
    mine = {k for k, v in ARCH_REGISTRY._obj_map.items() if v.__module__.startswith('deblurzoo')}
    covered = {name for archs, _ in CASES.values() for name in archs}
    assert mine <= covered, f'add golden cases for {sorted(mine - covered)} to tests/golden/make_golden.py'


@pytest.mark.parametrize('key', list(CASES))
def test_output_equals_recorded(key, recorded):
    assert key in recorded, f'no recorded output for {key}: run tests/golden/make_golden.py {CASES[key][0][0]}'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as recorded
    try:
        out = make_golden.run(key, CASES[key][1])
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(out, recorded[key], rtol=0, atol=1e-6, err_msg=key)
