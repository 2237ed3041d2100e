"""Bad arguments to the C++-backed activations, conv, pooling and upsampling: each is refused on the numpy
reference and on the C++ kernels with RuntimeError/ValueError/TypeError whose message names the values
involved (PyTorch refuses every one of them too). The C++ bindings themselves are called with
inconsistent arrays in a subprocess, so that a regression that crashes cannot take pytest down: each
call must raise, never read or write out of bounds.
"""
import math
import subprocess
import sys
import textwrap

import pytest
from native_faults_helpers import refuses

import tinyml
import tinyml.nn.functional as F


def _x(*shape, dtype="float32"):
    return tinyml.zeros(*shape, dtype=dtype)


X, W = _x(1, 2, 5, 5), _x(3, 2, 3, 3)


def _case(label, fn, names):
    return pytest.param(fn, names, id=label)



CASES = [
    # activations
    _case("gelu approximate", lambda: F.gelu(X, approximate="bogus"), ["'bogus'"]),
    _case("gelu int", lambda: F.gelu(_x(3, dtype="int64")), ["int64"]),
    _case("silu not a tensor", lambda: F.silu([1.0]), ["list"]),
    _case("swiglu shapes", lambda: F.swiglu(_x(5, 5), _x(3, 5)), ["(5, 5)", "(3, 5)"]),
    _case("softplus beta", lambda: F.softplus(X, beta="a"), ["beta", "'a'"]),
    # conv2d
    _case("conv input 2-d", lambda: F.conv2d(_x(5, 5), W), ["[5, 5]"]),
    _case("conv weight 3-d", lambda: F.conv2d(X, _x(3, 2, 3)), ["(3, 2, 3)"]),
    _case("conv channels", lambda: F.conv2d(X, _x(3, 4, 3, 3)), ["[1, 2, 5, 5]", "[3, 4, 3, 3]"]),
    _case("conv groups 0", lambda: F.conv2d(X, W, groups=0), ["groups (0)"]),
    _case("conv groups", lambda: F.conv2d(_x(1, 4, 5, 5), W, groups=2), ["(3)", "(2)"]),
    _case("conv stride 0", lambda: F.conv2d(X, W, stride=0), ["(0, 0)"]),
    _case("conv stride -1", lambda: F.conv2d(X, W, stride=(1, -1)), ["(1, -1)"]),
    _case("conv dilation 0", lambda: F.conv2d(X, W, dilation=0), ["(0, 0)"]),
    _case("conv padding -1", lambda: F.conv2d(X, W, padding=-1), ["(-1, -1)"]),
    _case("conv padding string", lambda: F.conv2d(X, W, padding="bogus"), ["'bogus'"]),
    _case("conv same strided", lambda: F.conv2d(X, W, stride=2, padding="same"), ["same", "(2, 2)"]),
    _case("conv kernel > input", lambda: F.conv2d(X, W, dilation=3), ["(7)", "[1, 2, 5, 5]"]),
    _case("conv dtypes", lambda: F.conv2d(X, _x(3, 2, 3, 3, dtype="float64")), ["float32", "float64"]),
    _case("conv int", lambda: F.conv2d(_x(1, 2, 5, 5, dtype="int64"), _x(3, 2, 3, 3, dtype="int64")),
          ["int64"]),
    _case("conv bias", lambda: F.conv2d(X, W, _x(3, 3)), ["(3, 3)"]),
    _case("conv kernel 0", lambda: F.conv2d(X, _x(3, 2, 0, 3)), ["(3, 2, 0, 3)"]),
    _case("conv no out channels", lambda: F.conv2d(X, _x(0, 2, 3, 3)), ["[0, 2, 3, 3]"]),
    _case("conv stride float", lambda: F.conv2d(X, W, stride=1.5), ["stride", "1.5"]),
    # pooling
    _case("max_pool 2-d", lambda: F.max_pool2d(_x(5, 5), 2), ["(5, 5)"]),
    _case("max_pool kernel 0", lambda: F.max_pool2d(X, 0), ["(0, 0)"]),
    _case("max_pool stride -1", lambda: F.max_pool2d(X, 2, -1), ["(-1, -1)"]),
    _case("max_pool padding -1", lambda: F.max_pool2d(X, 2, padding=-1), ["-1"]),
    _case("max_pool padding > k/2", lambda: F.max_pool2d(X, 3, padding=2), ["pad=2", "kernel_size=3"]),
    _case("max_pool kernel > input", lambda: F.max_pool2d(X, 6), ["2x5x5"]),
    _case("max_pool int", lambda: F.max_pool2d(_x(1, 2, 5, 5, dtype="int64"), 2), ["int64"]),
    _case("max_pool padding > k/2, dilated", lambda: F.max_pool2d(X, 3, padding=2, dilation=2),
          ["pad=2", "kernel_size=3"]),
    _case("max_pool no channels", lambda: F.max_pool2d(_x(1, 0, 5, 5), 2), ["(1, 0, 5, 5)"]),
    _case("max_pool kernel float", lambda: F.max_pool2d(X, 2.5), ["kernel_size", "2.5"]),
    _case("avg_pool divisor 0", lambda: F.avg_pool2d(X, 2, divisor_override=0), ["divisor"]),
    _case("avg_pool padding > k/2", lambda: F.avg_pool2d(X, 2, padding=2), ["pad=2", "kernel_size=2"]),
    _case("avg_pool no channels", lambda: F.avg_pool2d(_x(1, 0, 5, 5), 2), ["(1, 0, 5, 5)"]),
    _case("adaptive output -1", lambda: F.adaptive_avg_pool2d(X, (-1, 2)), ["(-1, 2)"]),
    _case("adaptive empty input", lambda: F.adaptive_avg_pool2d(_x(1, 2, 0, 5), 2), ["(1, 2, 0, 5)"]),
    # interpolate
    _case("interpolate mode", lambda: F.interpolate(X, scale_factor=2, mode="bogus"), ["'bogus'"]),
    _case("interpolate both", lambda: F.interpolate(X, size=3, scale_factor=2), ["only one"]),
    _case("interpolate neither", lambda: F.interpolate(X), ["either"]),
    _case("interpolate size 0", lambda: F.interpolate(X, size=(0, 3)), ["(0, 3)"]),
    _case("interpolate scale -1", lambda: F.interpolate(X, scale_factor=-1.0), ["(-5, -5)"]),
    _case("interpolate align_corners", lambda: F.interpolate(X, scale_factor=2, align_corners=True),
          ["align_corners"]),
    _case("interpolate scale nan", lambda: F.interpolate(X, scale_factor=math.nan), ["scale_factor", "nan"]),
    _case("interpolate scale inf", lambda: F.interpolate(X, scale_factor=math.inf), ["scale_factor", "inf"]),
    _case("interpolate empty input", lambda: F.interpolate(_x(1, 2, 0, 5), size=(3, 3)), ["(1, 2, 0, 5)"]),
    _case("interpolate no channels", lambda: F.interpolate(_x(1, 0, 5, 5), size=(3, 3)), ["(1, 0, 5, 5)"]),
]


@pytest.mark.parametrize("fn, names", CASES)
def test_bad_arguments_are_refused_by_name(fn, names):
    refuses(fn, *names)


# Direct calls of the bindings with arrays that disagree with each other or with the geometry. Each
# line is one call; every one must raise ValueError or TypeError (the binding checks before it touches
# memory), and the process must survive all of them.
BINDING_CALLS = """
gelu_forward(i64(3), "none")
gelu_forward(f32(3), "tanhh")
gelu_forward(f32(4, 4)[:, ::2], "none")
gelu_backward(f32(3), f32(4), "none")
gelu_backward(f32(3), f64(3), "none")
silu_backward(f32(3, 2), f32(2, 3))
swiglu_forward(f32(3), f32(2))
swiglu_backward(f32(3), f32(3), f32(2))
softplus_backward(f32(3), f32(3, 1), 1.0, 20.0)
conv2d_forward(f32(1, 2, 5), f32(3, 2, 3, 3), None, 1, 1, 0, 0, 1, 1, 1, 3, 3)
conv2d_forward(f32(1, 2, 5, 5), f32(3, 2, 3, 3), None, 1, 1, 0, 0, 1, 1, 2, 3, 3)
conv2d_forward(f32(1, 2, 5, 5), f32(3, 2, 3, 3), None, 1, 1, 0, 0, 1, 1, 0, 3, 3)
conv2d_forward(f32(1, 2, 5, 5), f32(3, 2, 3, 3), None, -1, 1, 0, 0, 1, 1, 1, 3, 3)
conv2d_forward(f32(1, 2, 5, 5), f32(3, 2, 3, 3), None, 1, 1, -5, 0, 1, 1, 1, 3, 3)
conv2d_forward(f32(1, 2, 5, 5), f32(3, 2, 3, 3), None, 1, 1, 0, 0, 1, 1, 1, 0, 3)
conv2d_forward(f32(1, 2, 5, 5), f32(3, 2, 0, 3), None, 1, 1, 0, 0, 1, 1, 1, 3, 3)
conv2d_forward(f32(1, 2, 5, 5), f32(3, 2, 3, 3), f32(4), 1, 1, 0, 0, 1, 1, 1, 3, 3)
conv2d_forward(f32(1, 2, 5, 5), f64(3, 2, 3, 3), None, 1, 1, 0, 0, 1, 1, 1, 3, 3)
conv2d_backward(f32(1, 2, 5, 5), f32(3, 2, 3, 3), f32(1, 4, 3, 3), 1, 1, 0, 0, 1, 1, 1, True, True)
conv2d_backward(f32(1, 2, 5, 5), f32(3, 2, 3, 3), f32(1, 3, 3), 1, 1, 0, 0, 1, 1, 1, True, True)
max_pool2d_forward(f32(2, 5, 5), 2, 2, 2, 2, 0, 0, 1, 1, 2, 2)
max_pool2d_forward(f32(1, 2, 5, 5), 0, 2, 2, 2, 0, 0, 1, 1, 2, 2)
max_pool2d_forward(f32(1, 2, 5, 5), 2, 2, 2, 2, 0, 0, 1, 1, 40, 2)
max_pool2d_backward(f32(1, 2, 2, 2), full(10**9, 1, 2, 2, 2), 5, 5)
max_pool2d_backward(f32(1, 2, 2, 2), full(-7, 1, 2, 2, 2), 5, 5)
max_pool2d_backward(f32(1, 2, 2, 2), i64(1, 2, 2, 3), 5, 5)
max_pool2d_backward(f32(1, 2, 2, 2), i32(1, 2, 2, 2), 5, 5)
max_pool2d_backward(f32(1, 2, 2, 2), i64(1, 2, 2, 2), 0, 5)
avg_pool2d_forward(f32(1, 2, 5, 5), 2, 2, 2, 2, 0, 0, 40, 40, True, 0)
avg_pool2d_backward(f32(1, 2, 40, 40), 5, 5, 2, 2, 2, 2, 0, 0, True, 0)
avg_pool2d_backward(f32(1, 2, 2, 2), 5, 5, 2, 2, 2, 2, -3, 0, True, 0)
avg_pool2d_backward(f32(1, 2, 2, 2), 0, 5, 2, 2, 2, 2, 0, 0, True, 0)
upsample2d_forward(f32(1, 1, 2, 2), 3, 3, arange(3), i64(3), i64(3), i64(3), f32(3), f32(3))
upsample2d_forward(f32(1, 1, 2, 2), 3, 3, i64(2), i64(3), i64(3), i64(3), f32(3), f32(3))
upsample2d_forward(f32(1, 1, 2, 2), 3, 3, i64(3), i64(3), i64(3), i64(3), f64(3), f32(3))
upsample2d_forward(f32(1, 1, 2, 2), 3, 3, i64(3), i64(3), i64(3), i64(3), f32(3), f32(3), nearest="yes")
upsample2d_backward(f32(1, 1, 3, 3), 1, 1, i64(3), i64(3), i64(3), arange(3) % 2, f32(3), f32(3))
"""


def test_bindings_refuse_inconsistent_arrays():
    pytest.importorskip("tinyml._C", reason="the C++ extension is not built")
    script = textwrap.dedent("""
        import numpy as np
        from tinyml import _C
        f32 = lambda *s: np.zeros(s, np.float32)
        f64 = lambda *s: np.zeros(s, np.float64)
        i64 = lambda *s: np.zeros(s, np.int64)
        i32 = lambda *s: np.zeros(s, np.int32)
        full = lambda v, *s: np.full(s, v, np.int64)
        arange = lambda n: np.arange(n, dtype=np.int64)
        for line in CALLS.strip().splitlines():
            try:
                eval("_C." + line)
                print("ACCEPTED", line, flush=True)
            except (ValueError, TypeError) as e:
                print("refused", line, "->", e, flush=True)
        print("SURVIVED")
    """).replace("CALLS", repr(BINDING_CALLS))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    out = res.stdout
    assert res.returncode == 0 and "SURVIVED" in out, f"died (rc {res.returncode}):\n{out}\n{res.stderr}"
    accepted = [line for line in out.splitlines() if line.startswith("ACCEPTED")]
    assert not accepted, "\n".join(accepted)
    assert out.count("refused") == len(BINDING_CALLS.strip().splitlines())
