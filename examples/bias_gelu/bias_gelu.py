"""A custom fused op end to end: y = gelu(x + b), with a numpy reference, a C++ kernel and a
Triton kernel, registered for tinyml's dispatch, gradchecked, tested and benchmarked.

    python examples/bias_gelu/bias_gelu.py            # check + benchmark on the cpu
    TRITON_INTERPRET=1 python examples/bias_gelu/bias_gelu.py --quick   # also the Triton kernel, emulated

docs/custom_kernels.md walks through this file.
"""
import math
import os
import sys
import time

import numpy as np

import tinyml
from tinyml.autograd import Function
from tinyml.backends import register, run

HERE = os.path.dirname(os.path.abspath(__file__))
_erf = np.vectorize(math.erf, otypes=[np.float64])


# 1. The numpy reference: the oracle every other implementation is tested against.
@register("bias_gelu_forward", "cpu", backend="reference")
def bias_gelu_forward_ref(x, b):
    h = (x + b).astype(np.float64)
    return (0.5 * h * (1 + _erf(h / math.sqrt(2)))).astype(x.dtype)


@register("bias_gelu_backward", "cpu", backend="reference")
def bias_gelu_backward_ref(x, b, dy):
    h = (x + b).astype(np.float64)
    dh = dy * (0.5 * (1 + _erf(h / math.sqrt(2))) + h * np.exp(-0.5 * h * h) / math.sqrt(2 * math.pi))
    return dh.astype(x.dtype), dh.sum(axis=0).astype(b.dtype)


# 2. The op: a Function whose forward and backward call kernels by name.
class BiasGelu(Function):
    @staticmethod
    def forward(ctx, x, b):
        ctx.save_for_backward(x, b)
        return run("bias_gelu_forward", x, b)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        dx, db = run("bias_gelu_backward", x, b, dy.contiguous())
        return dx, db


def bias_gelu(x: tinyml.Tensor, b: tinyml.Tensor) -> tinyml.Tensor:
    """gelu(x + b) with b broadcast over the last dim of x."""
    if b.ndim != 1 or x.shape[-1] != b.shape[0]:
        raise ValueError(f"bias_gelu: x of shape {tuple(x.shape)} needs a bias of shape ({x.shape[-1]},), got "
                         f"{tuple(b.shape)}")
    rows = x.reshape(-1, x.shape[-1]).contiguous()
    return BiasGelu.apply(rows, b).reshape(x.shape)


# 3. The C++ kernel, compiled at run time and registered for the cpu device.
def register_cpp():
    ext = tinyml.utils.cpp_extension.load("bias_gelu_ext", [os.path.join(HERE, "bias_gelu.cpp")])

    @register("bias_gelu_forward", "cpu")
    def forward(x, b):
        if x.dtype != np.float32:  # the C++ kernel is float32-only: declining lets the reference run
            return NotImplemented
        return ext.bias_gelu_forward(x, b)

    @register("bias_gelu_backward", "cpu")
    def backward(x, b, dy):
        if x.dtype != np.float32:
            return NotImplemented
        return ext.bias_gelu_backward(x, b, dy)

    return ext


# 4. The Triton kernel, registered for the cuda device (a GPU, or Triton's interpreter).
def register_triton():
    sys.path.insert(0, HERE)
    import bias_gelu_triton

    register("bias_gelu_forward", "cuda")(bias_gelu_triton.bias_gelu_forward)
    register("bias_gelu_backward", "cuda")(bias_gelu_triton.bias_gelu_backward)


# 5. Checks: gradcheck on the reference, then every implementation against the reference.
def check(quick: bool = False):
    x = tinyml.randn(3, 5, dtype=tinyml.float64, requires_grad=True)
    b = tinyml.randn(5, dtype=tinyml.float64, requires_grad=True)
    tinyml.testing.gradcheck(bias_gelu, [x, b])
    devices = ["cpu"] + (["cuda"] if tinyml.cuda.is_available() else [])
    for device in devices:
        for rows, n in [(1, 1), (7, 33), (64, 130)][: 2 if quick and device == "cuda" else 3]:
            xn = np.random.default_rng(rows).standard_normal((rows, n)).astype(np.float32)
            bn = np.random.default_rng(n).standard_normal(n).astype(np.float32)
            dyn = np.random.default_rng(rows + n).standard_normal((rows, n)).astype(np.float32)
            x = tinyml.tensor(xn, device=device, requires_grad=True)
            b = tinyml.tensor(bn, device=device, requires_grad=True)
            y = bias_gelu(x, b)
            y.backward(tinyml.tensor(dyn, device=device))
            want_dx, want_db = bias_gelu_backward_ref(xn, bn, dyn)
            tinyml.testing.assert_close(y, bias_gelu_forward_ref(xn, bn), kind="reduction")
            tinyml.testing.assert_close(x.grad, want_dx, kind="reduction")
            tinyml.testing.assert_close(b.grad, want_db, kind="reduction", atol=1e-4)
        print(f"bias_gelu on {device}: matches the reference forward and backward")


# 6. Benchmark on the cpu: the fused C++ kernel vs tinyml's two-op version vs PyTorch eager.
def median_ms(fn, reps=20):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[len(times) // 2]


def benchmark(rows=4096, n=3072):
    import torch

    torch.set_num_threads(tinyml.get_num_threads() if hasattr(tinyml, "get_num_threads") else 2)
    xn = np.random.default_rng(0).standard_normal((rows, n)).astype(np.float32)
    bn = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    x, b = tinyml.tensor(xn, requires_grad=True), tinyml.tensor(bn, requires_grad=True)
    tx, tb = torch.tensor(xn, requires_grad=True), torch.tensor(bn, requires_grad=True)
    fused = median_ms(lambda: bias_gelu(x, b).sum().backward())
    composite = median_ms(lambda: tinyml.nn.functional.gelu(x + b).sum().backward())
    peer = median_ms(lambda: torch.nn.functional.gelu(tx + tb).sum().backward())
    print(f"bias_gelu {rows}x{n} forward+backward: fused C++ {fused:.2f} ms, tinyml x+b then gelu "
          f"{composite:.2f} ms, PyTorch eager {peer:.2f} ms; torch/fused = {peer / fused:.2f}")


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    register_cpp()
    if tinyml.cuda.is_available():
        register_triton()
    check(quick)
    benchmark(*((256, 512) if quick else ()))
