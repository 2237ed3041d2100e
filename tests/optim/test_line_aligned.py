"""Adam's moments sit at their parameter's offset in a 64-byte line (tinyml/optim/_line_aligned.py), fresh and
after load_state_dict, with the same values as before; small or strided tensors take the ordinary path."""
import numpy as np
import pytest

import tinyml
from tinyml import nn
from tinyml.optim._line_aligned import copy_at_line_of, zeros_at_line_of


def _offset(t) -> int:
    return t._data.ctypes.data % 64


@pytest.mark.parametrize("opt_name", ["Adam", "AdamW"])
def test_moments_at_the_parameters_offset_fresh_and_loaded(opt_name):
    rng = np.random.default_rng(0)
    ps = [nn.Parameter(tinyml.tensor(rng.standard_normal(n).astype(np.float32))) for n in (7, 5000, 70001)]
    opt = getattr(tinyml.optim, opt_name)(ps, lr=1e-3, amsgrad=True)
    for p in ps:
        p.grad = tinyml.tensor(rng.standard_normal(p.shape).astype(np.float32))
    opt.step()
    for p in ps[1:]:
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert _offset(opt.state[p][name]) == _offset(p)
    again = getattr(tinyml.optim, opt_name)(ps, lr=1e-3, amsgrad=True)
    again.load_state_dict(opt.state_dict())
    for p in ps:
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            mine, theirs = again.state[p][name], opt.state[p][name]
            assert np.array_equal(mine.numpy(), theirs.numpy()) and mine._data is not theirs._data
            if p.numel() >= 1024:
                assert _offset(mine) == _offset(p)


def test_placement_keeps_shape_dtype_values_and_falls_back():
    p = tinyml.tensor(np.arange(3 * 700, dtype=np.float64).reshape(3, 700))
    z = zeros_at_line_of(p)
    assert z.shape == p.shape and z.dtype == p.dtype and not z.numpy().any() and _offset(z) == _offset(p)
    c = copy_at_line_of(p * 2, p)
    assert np.array_equal(c.numpy(), p.numpy() * 2) and _offset(c) == _offset(p)
    small = tinyml.tensor(np.ones(4, np.float32))
    assert zeros_at_line_of(small).shape == (4,)
    strided = tinyml.tensor(np.ones((2000, 4), np.float32)).t()
    out = copy_at_line_of(strided, strided)
    assert out.shape == (4, 2000) and np.array_equal(out.numpy(), strided.numpy())
