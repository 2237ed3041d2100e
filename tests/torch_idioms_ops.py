"""Idioms of arithmetic, in-place ops, reshaping, matmul/einsum, linalg, fft, sorting, dtypes,
save/load and seeds; see tests/torch_idioms_list.py for the names they use and how they are compared."""

OPS_VALUE = r"""
x + y
x - y
x * y
x / y
x ** 2
2 ** x.abs()
x // 1
x % 2
-x
x + 1
1 - x
x * 2.5
x / 3
x + v[:4]
x + torch.ones(4)
x * torch.arange(3.0).unsqueeze(1)
b3 + x
x.add(y)
x.add(y, alpha=2)
x.sub(y)
x.mul(y)
x.div(y)
x.pow(3)
torch.add(x, y)
torch.mul(x, 2)
torch.div(x, y, rounding_mode='floor')
torch.true_divide(x, 2)
x.abs()
x.neg()
x.exp()
pos.log()
pos.log2()
pos.log10()
x.log1p().isnan().sum()
x.expm1()
pos.sqrt()
pos.rsqrt()
x.sin()
x.cos()
x.tan()
x.tanh()
x.sigmoid()
torch.sigmoid(x)
torch.tanh(x)
torch.exp(x)
torch.log(pos)
torch.sqrt(pos)
x.relu()
torch.relu(x)
x.clamp(-0.5, 0.5)
x.clamp(min=0)
x.clamp(max=0.1)
torch.clamp(x, -1, 1)
x.clip(-1, 1)
x.clamp_min(0)
x.sign()
x.floor()
x.ceil()
x.round()
x.trunc()
x.frac()
x.reciprocal()
x.square()
torch.atan2(x, y)
pos.asin()
torch.lerp(x, y, 0.3)
torch.isnan(x)
torch.isinf(x / 0)
torch.isfinite(x)
torch.nan_to_num(x / 0)
torch.allclose(x, x + 1e-9)
torch.isclose(x, y)
torch.equal(x, x.clone())
x.softmax(dim=-1)
x.log_softmax(dim=1)
torch.softmax(x, dim=0)
r = x.clone(); r.add_(1)
r = x.clone(); r.mul_(2)
r = x.clone(); r.zero_()
r = x.clone(); r.fill_(3.0)
r = x.clone(); r.clamp_(0, 1)
r = x.clone(); r[0] = 0
r = x.clone(); r[:, 1] = 5.0
r = x.clone(); r[mask] = 0
r = x.clone(); r += y
r = x.clone(); r *= 2
r = x.clone(); r.sub_(y)
r = x.clone(); r.div_(2)
r = x.clone(); r.copy_(y)
r = x.clone(); r.relu_()
r = x.clone(); r.masked_fill_(mask, 1.0)
r = x.clone(); r.exp_()
r = x.clone(); r.pow_(2)
r = x.clone(); r.index_fill_(1, torch.tensor([0]), -1.0)
r = torch.zeros(3, 4); r.scatter_(1, i[:, :1] % 4, 1.0)
torch.zeros(3, 5).scatter(1, lab.unsqueeze(1), 1.0)
torch.zeros(5).scatter_add(0, torch.tensor([0, 1, 1, 4]), torch.ones(4))
torch.zeros(5).index_add(0, torch.tensor([0, 2, 2]), torch.ones(3))
r = torch.zeros(5); r.index_add_(0, torch.tensor([1, 1]), torch.tensor([2.0, 3.0]))
x.view(4, 3)
x.view(-1)
x.reshape(2, 6)
x.reshape(-1, 2)
x.flatten()
img.flatten(1)
img.flatten(start_dim=2)
torch.flatten(b3, 1)
x.unsqueeze(0)
x.unsqueeze(-1).shape
x.unsqueeze(0).squeeze(0)
x.squeeze()
b3[:, :1].squeeze(1)
x.t()
x.T
x.transpose(0, 1)
b3.transpose(1, 2)
b3.permute(2, 0, 1)
b3.permute(0, 2, 1).contiguous().view(2, -1)
img.permute(0, 2, 3, 1).shape
x.expand(2, 3, 4)
v[:4].expand(3, 4)
x.repeat(2, 1)
x.repeat(1, 1, 2).shape
x.repeat_interleave(2, dim=0)
torch.cat([x, y])
torch.cat([x, y], dim=1)
torch.cat((x, y), -1)
torch.stack([x, y])
torch.stack([x, y], dim=2)
torch.hstack([x, y])
torch.vstack([x, y])
x.split(2)
x.split(2, dim=1)
x.split([1, 2])
torch.split(x, 1, dim=0)
x.chunk(2, dim=1)
torch.chunk(x, 3)
x.unbind(0)
torch.unbind(b3, dim=1)
x.flip(0)
torch.flip(x, dims=[1])
x.roll(1, dims=1)
torch.tril(x)
torch.triu(x, diagonal=1)
torch.tril(torch.ones(4, 4))
x.narrow(1, 1, 2)
x.unfold(1, 2, 1)
x.view_as(y)
x.reshape_as(y)
x.expand_as(b3)
x.type_as(d64)
x.new_zeros(2, 2)
x.new_ones(3)
x.new_full((2,), 4.0)
x.new_tensor([1.0, 2.0])
x.new_empty(2, 3).shape
x @ a
torch.matmul(x, a)
x.matmul(a)
torch.mm(x, a)
torch.bmm(b3, c3)
b3 @ c3
b3 @ a
v @ u
torch.dot(v, u)
torch.mv(a.t(), v[:4])
torch.outer(v, u)
torch.einsum('ij,jk->ik', x, a)
torch.einsum('bij,bjk->bik', b3, c3)
torch.einsum('ij->ji', x)
torch.einsum('ii->', m)
torch.einsum('i,i->', v, u)
torch.einsum('bij->bj', b3)
torch.addmm(torch.ones(3, 5), x, a)
torch.baddbmm(torch.zeros(2, 3, 5), b3, c3)
torch.trace(m)
torch.diag(m)
torch.diag(v)
m.diagonal()
torch.diag_embed(x).shape
torch.kron(torch.eye(2), m[:2, :2])
torch.cross(x[:, :3], y[:, :3], dim=1)
torch.cdist(x, y)
torch.linalg.norm(x)
torch.linalg.vector_norm(x, dim=1)
torch.linalg.matrix_norm(m)
torch.linalg.inv(m)
torch.inverse(m)
torch.linalg.det(m)
torch.det(m)
torch.linalg.solve(m, x.t())
torch.linalg.cholesky(m)
torch.linalg.eigh(m)[0]
torch.linalg.svd(m)[1]
torch.linalg.svdvals(m)
torch.linalg.qr(m)[1].abs()
torch.linalg.matrix_rank(m)
torch.linalg.pinv(x).shape
torch.fft.rfft(sig).abs()
torch.fft.fft(sig).abs()
torch.fft.irfft(torch.fft.rfft(sig), n=16)
torch.fft.ifft(torch.fft.fft(sig)).real
torch.fft.rfftfreq(8)
torch.sort(v)
v.sort(descending=True)
x.sort(dim=1).indices
torch.argsort(v)
x.argsort(dim=0, descending=True)
torch.topk(v, 2)
x.topk(2, dim=1)
x.topk(1, largest=False).values
torch.kthvalue(v, 2)
torch.unique(i)
torch.unique(i, return_counts=True)
torch.bincount(lab)
torch.histc(x, bins=4, min=-2, max=2)
torch.searchsorted(torch.arange(5.0), torch.tensor([1.5, 3.2]))
torch.bucketize(x, torch.tensor([-1.0, 0.0, 1.0]))
torch.finfo(torch.float32).eps
torch.finfo(torch.float16).max
torch.iinfo(torch.int32).max
torch.float32 == torch.float
torch.get_default_dtype()
torch.Size([2, 3])
torch.Size([2, 3]).numel()
x.shape == (3, 4)
x.shape[0]
list(x.shape)
torch.promote_types(torch.int64, torch.float32)
(i + 0.5).dtype
(i * 2).dtype
(i / 2).dtype
(x + d64).dtype
(mask + 1).dtype
(i + torch.tensor(1.5)).dtype
torch.tensor([1, 2]) + torch.tensor([0.5, 0.5])
torch.tensor(1.0) + 1
i.sum().dtype
mask.sum().dtype
x.mean().dim()
torch.save(x, path); torch.load(path)
torch.save({'w': x, 'b': v}, path); torch.load(path)['b']
r = nn.Linear(4, 2); torch.save(r.state_dict(), path); torch.load(path)['weight'] - r.weight
r = nn.Linear(4, 2); q = nn.Linear(4, 2); q.load_state_dict(r.state_dict()); torch.equal(q.weight, r.weight)
r = nn.Linear(4, 2); q = nn.Linear(4, 2); q.load_state_dict(r.state_dict()); (q(x) - r(x)).abs().max()
torch.manual_seed(1); r = torch.rand(3); torch.manual_seed(1); torch.equal(r, torch.rand(3))
g = torch.Generator(); torch.randn(3, generator=g.manual_seed(0)) - torch.randn(3, generator=g.manual_seed(0))
s = torch.get_rng_state(); r = torch.rand(2); torch.set_rng_state(s); torch.equal(r, torch.rand(2))
"""

# Random draws: their streams differ between libraries, so dtype and shape are compared.
OPS_SHAPE = r"""
torch.rand(3, 4)
torch.randn(2, 3)
torch.randn(2, 3, dtype=torch.float64)
torch.randint(0, 10, (3,))
torch.randint(5, (2, 2))
torch.randperm(5)
torch.rand_like(x)
torch.randn_like(x)
torch.randint_like(x, 10)
torch.empty(3).uniform_(-1, 1)
torch.empty(3, 3).normal_(0, 0.02)
torch.zeros(4).bernoulli_(0.5)
torch.bernoulli(pos)
torch.multinomial(pos[0], 2)
torch.multinomial(pos, 1)
torch.multinomial(pos[0], 10, replacement=True)
torch.normal(0.0, 1.0, size=(3,))
torch.normal(x, 1.0)
torch.randn(3, generator=torch.Generator().manual_seed(3))
"""
