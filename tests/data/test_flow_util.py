"""The flow codec every flow reader goes through (disk files, FileClient bytes, LMDB values)."""
import numpy as np
import pytest

from deblurzoo.data.flow_util import flow_from_bytes, read_flow, write_flow


@pytest.mark.parametrize('ext, tol', [('.png', 0.5 / 64), ('.npy', 2e-2)])  # 1/64-px PNG code; float16 .npy
def test_round_trip_from_file_and_bytes(tmp_path, ext, tol):
    flow = np.random.default_rng(0).uniform(-40, 40, (5, 7, 4)).astype(np.float32)
    path = str(tmp_path / f'000001{ext}')
    write_flow(path, flow)
    from_file = read_flow(path)
    with open(path, 'rb') as f:
        from_bytes = flow_from_bytes(f.read(), path)
    assert from_file.dtype == np.float32 and from_file.shape == (5, 7, 4)
    np.testing.assert_array_equal(from_file, from_bytes)
    np.testing.assert_allclose(from_file, flow, atol=tol)


def test_bad_flow_files_are_named(tmp_path):
    npy = tmp_path / 'bad.npy'
    np.save(npy, np.zeros((5, 7, 2), np.float32))
    with pytest.raises(ValueError, match=r'bad\.npy: expected a flow of shape \(H, W, 4\), got \(5, 7, 2\)'):
        read_flow(str(npy))
    with pytest.raises(ValueError, match=r'lmdb:seq/000001: cannot decode the flow file'):
        flow_from_bytes(b'not a png', 'lmdb:seq/000001')
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_flow(str(tmp_path / 'missing.png'))
