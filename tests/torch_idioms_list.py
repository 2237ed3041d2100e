"""One-line PyTorch idioms of a tiny-model user's first day, run by tests/test_torch_idioms.py.

One idiom per line, written as a PyTorch user writes it (`torch`, `nn`, `F` are bound to PyTorch or to
tinyml). Inputs (tests/test_torch_idioms.py make_env): float32 x, y (3,4); a (4,5); v, u (5,); b3 (2,3,4);
c3 (2,4,5); img (2,3,8,8); seq (2,5,4); m (4,4) symmetric positive definite; i (3,4) int64 in [0,5);
lab (3,) int64 in [0,4); tok (2,5) int64 in [0,10); pos (3,4) in [0,1); t01 (3,4) zeros and ones;
sig (16,); d64 (3,4) float64; mask = x > 0; w, w2 leaves with requires_grad (values of x, a); path, a
file name in a temporary folder; optim, lr_scheduler, DataLoader, TensorDataset as a user imports
them (`from torch.utils.data import DataLoader`); opt = optim.SGD([w], lr=1.0).
The result is the last expression (or `r`).
VALUE idioms compare dtype, shape and values; SHAPE idioms dtype and shape (random draws, fresh layer
weights); RUNS idioms only have to run. Grow the list freely; keep each idiom honest PyTorch.
The idioms are split by what they exercise: this module (tensor basics), tests/torch_idioms_ops.py
(arithmetic, shapes, matmul, linalg, fft, sorting, dtypes, save/load, seeds), tests/torch_idioms_nn.py
(nn layers, F, losses, autograd, optim, schedulers, data, distributions) and tests/torch_idioms_more.py
(a further mix of all of these).
"""
from tests.torch_idioms_more import MORE_RUNS, MORE_SHAPE, MORE_VALUE
from tests.torch_idioms_nn import NN_RUNS, NN_SHAPE, NN_VALUE
from tests.torch_idioms_ops import OPS_SHAPE, OPS_VALUE

# Creation, dtype/device, indexing, slicing, masking, comparisons and reductions.
BASICS_VALUE = r"""
torch.tensor([1, 2, 3])
torch.tensor([1.0, 2.0, 3.0])
torch.tensor([[1, 2], [3, 4]], dtype=torch.float32)
torch.tensor(3.5)
torch.tensor([True, False])
torch.zeros(2, 3)
torch.zeros((2, 3))
torch.ones(4)
torch.ones(2, 2, dtype=torch.int64)
torch.full((2, 3), 7.0)
torch.full((2,), 3)
torch.arange(10)
torch.arange(2, 10, 3)
torch.arange(0, 1, 0.25)
torch.linspace(0, 1, 5)
torch.logspace(0, 2, 3)
torch.eye(3)
torch.eye(2, 3)
torch.zeros_like(x)
torch.ones_like(x)
torch.full_like(x, 2.5)
torch.empty(2, 3).shape
torch.from_numpy(np.arange(6.0).reshape(2, 3))
torch.as_tensor([1.0, 2.0])
torch.tensor(np.array([1, 2, 3]))
x.numpy()
x.tolist()
x[0, 0].item()
x.sum().item()
torch.tensor([[1, 2], [3, 4]]).tolist()
x.shape
x.size()
x.size(1)
x.dim()
x.ndim
x.numel()
x.dtype
x.float().dtype
x.double()
x.long()
x.int()
x.half().dtype
x.bool()
x.to(torch.float64)
x.to(torch.int32)
x.type(torch.float64)
i.float()
x.device
str(x.device)
x.to('cpu')
x.cpu()
x.clone()
x.detach()
x.is_contiguous()
x.t().is_contiguous()
x.t().contiguous()
x.requires_grad
w.requires_grad
torch.is_tensor(x)
torch.is_floating_point(x)
x.is_floating_point()
x.element_size()
x[0]
x[-1]
x[:, 1]
x[1:, :2]
x[..., 0]
x[None].shape
x[:, None, :].shape
x[::2]
x[mask]
x[x > 0]
x[[0, 2]]
x[torch.tensor([0, 2])]
x[0, [1, 3]]
x[i[:, 0] % 3]
b3[:, 1, ::2]
b3[..., -1]
torch.where(x > 0, x, torch.zeros_like(x))
torch.where(mask, x, 0.0)
torch.where(mask)
x.masked_fill(mask, 0.0)
x.masked_fill(~mask, float('-inf'))
torch.masked_select(x, mask)
mask.nonzero()
torch.nonzero(mask)
mask.any()
mask.all()
mask.sum()
mask.float().mean()
(x > 0) & (y > 0)
(x > 0) | (y > 0)
x.eq(y)
x == x
x != y
x >= 0
torch.gather(x, 1, i[:, :2] % 4)
x.gather(1, lab.unsqueeze(1))
torch.index_select(x, 0, torch.tensor([2, 0]))
x.index_select(1, torch.tensor([1, 3]))
torch.take(x, torch.tensor([0, 5, 11]))
x.sum()
x.sum(0)
x.sum(dim=1)
x.sum(dim=1, keepdim=True)
x.sum((0, 1))
b3.sum(dim=(1, 2))
x.mean()
x.mean(dim=0)
x.mean(-1, keepdim=True)
x.std()
x.std(dim=0)
x.std(dim=1, unbiased=False)
x.var()
x.var(1, keepdim=True)
x.var(dim=0, correction=0)
x.max()
x.min()
x.max(dim=1)
x.max(dim=1).values
x.max(1)[1]
x.min(dim=0, keepdim=True)
x.argmax()
x.argmax(dim=1)
x.argmin(1)
x.amax(dim=0)
x.amin(dim=(0, 1))
x.prod()
x.prod(1)
x.cumsum(dim=1)
torch.cumsum(x, 0)
x.cumprod(1)
x.norm()
x.norm(dim=1)
x.norm(p=1)
x.abs().sum()
x.logsumexp(dim=1)
torch.logsumexp(x, dim=0)
torch.max(x, y)
torch.maximum(x, y)
torch.minimum(x, y)
torch.sum(x, dim=1)
torch.mean(x)
torch.var_mean(x, dim=1)
torch.std_mean(x)
torch.median(x)
x.median(dim=1)
torch.count_nonzero(mask)
"""

# Complex tensors (complex64 / complex128): creation, arithmetic, parts, fft. Values are compared
# through view_as_real where a result is complex, so that the imaginary parts count too.
COMPLEX_VALUE = r"""
torch.tensor([1 + 2j, 3 - 1j])
torch.view_as_real(torch.tensor([1 + 2j, 3 - 1j]))
torch.tensor([1 + 2j]).dtype
torch.zeros(2, 3, dtype=torch.complex64)
torch.ones(2, dtype=torch.cfloat)
torch.complex(x, y)
torch.view_as_real(torch.complex(x, y))
torch.view_as_real(torch.polar(x.abs(), y))
torch.complex(x, y).abs()
torch.complex(x, y).angle()
torch.complex(x, y).real
torch.complex(x, y).imag
torch.view_as_real(torch.complex(x, y).conj().resolve_conj())
torch.view_as_real(torch.complex(x, y) * torch.complex(y, x))
torch.view_as_real(torch.complex(x, y) / torch.complex(y, x + 3))
torch.view_as_real(torch.complex(x, y) + x)
torch.view_as_real(torch.complex(x, y) * 2j)
torch.view_as_real(torch.complex(x, y).exp())
torch.view_as_real(torch.complex(x, y) ** 2)
torch.view_as_real(torch.complex(x, y).sqrt())
torch.view_as_real(torch.complex(x, y).log())
torch.view_as_real(torch.complex(x, y).tanh())
torch.view_as_real(torch.complex(x, y).sum(dim=1))
torch.view_as_real(torch.complex(x, y).mean())
torch.view_as_real(torch.complex(x, y) @ torch.complex(y, x).T)
torch.view_as_real(torch.complex(x, y).reshape(2, 6).T)
torch.view_as_real(torch.cat([torch.complex(x, y), torch.complex(y, x)]))
torch.view_as_real(torch.view_as_complex(b3[..., :2].contiguous()))
torch.view_as_real(x.to(torch.complex64))
torch.complex(x, y).is_complex()
torch.is_complex(x)
torch.complex(d64, d64).dtype
torch.float32.to_complex()
torch.complex64.to_real()
torch.promote_types(torch.float64, torch.complex64)
torch.result_type(x, 1j)
torch.fft.rfft(sig).dtype
torch.view_as_real(torch.fft.rfft(sig))
torch.view_as_real(torch.fft.fft(sig))
torch.view_as_real(torch.fft.ifft(torch.fft.fft(sig)))
torch.fft.irfft(torch.fft.rfft(x) * torch.fft.rfft(y), n=4)
torch.fft.rfft(x, dim=0).abs()
torch.fft.fft(sig).abs().argmax()
torch.fft.fftfreq(8)
torch.complex(x, y) * torch.complex(y, x)
torch.complex(x, y).sum().item()
torch.tensor(1 + 2j).item()
"""

# Idioms expected to differ, with why. They stay in the denominator (the share counts them as failures);
# the test prints them apart, with the reason, under KNOWN GAP.
KNOWN_GAPS: dict[str, str] = {}


def _lines(block: str) -> list[str]:
    return [line for line in block.strip().splitlines() if line.strip()]


IDIOMS: list[tuple[str, str]] = ([(line, "value") for line in _lines(BASICS_VALUE + OPS_VALUE + NN_VALUE
                                                                       + MORE_VALUE + COMPLEX_VALUE)]
                                 + [(line, "shape") for line in _lines(OPS_SHAPE + NN_SHAPE + MORE_SHAPE)]
                                 + [(line, "runs") for line in _lines(NN_RUNS + MORE_RUNS)])
