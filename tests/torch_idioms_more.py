"""More first-day idioms (the third hundred): creation and shapes, indexing, reductions, elementwise math,
nn layers and F, losses, module utilities, autograd, optimizer steps, schedulers, data utilities and
distributions; see tests/torch_idioms_list.py for the names they use and how they are compared."""

MORE_VALUE = r"""
torch.arange(5).float()
torch.arange(6).reshape(2, 3)
torch.arange(1, 4) * 2
torch.zeros(3, dtype=torch.long)
torch.ones(2, 3).sum(1)
torch.full((2, 2), True)
torch.eye(3)[1]
torch.empty(0).numel()
torch.tensor([]).shape
torch.tensor([[1.0], [2.0]]).shape
torch.tensor(2) * 3
torch.tensor([1, 2, 3]).float().mean()
torch.tensor([1, 2, 3]).sum()
torch.ones(3).diag()
torch.linspace(-1, 1, steps=5)
torch.arange(0, 10, 2).tolist()
torch.logspace(-2, 2, 5, base=10)
torch.stack([torch.zeros(2), torch.ones(2)], dim=1)
torch.meshgrid(torch.arange(2), torch.arange(3), indexing='ij')
torch.full_like(i, 7)
torch.tensor([1.5]).item()
len(x)
b3.mT.shape
x.view(3, 2, 2).shape
x[1][2]
x[:, -1]
x[1:3, 1:3]
x[torch.arange(3), lab]
x[lab > 1]
x[:, [0, 0, 1]]
x.masked_fill(x < 0, 0)
torch.where(x > y, x, y)
x.abs().max()
x.argmax(dim=0, keepdim=True)
x.cumsum(-1)[:, -1]
x.mean(dim=(0, 1))
x.var(unbiased=False)
x.std(0, keepdim=True)
x.norm(p=2, dim=1, keepdim=True)
x.max(0).indices
x.min(1).values
mask.any(dim=1)
mask.all(dim=0)
mask.int().sum(1)
(~mask).sum()
mask.logical_not()
torch.logical_and(mask, x < 1)
torch.sum(x > 0).item()
torch.count_nonzero(x > 0, dim=1)
x.round(decimals=1)
torch.exp(-x ** 2)
torch.sinh(x)
torch.cosh(x)
torch.asinh(x)
torch.acos(pos)
torch.atan(x)
torch.atanh(pos * 0.9)
torch.erf(x)
torch.erfinv(pos * 0.9)
torch.logit(pos, eps=1e-6)
torch.xlogy(pos, pos)
torch.hypot(x, y)
torch.copysign(x, y)
torch.deg2rad(x)
torch.rad2deg(x)
torch.rsqrt(pos + 1)
torch.norm(x, dim=1)
torch.cumprod(pos, dim=0)
torch.squeeze(x.unsqueeze(0))
torch.transpose(b3, 0, 2).shape
torch.permute(b3, (1, 0, 2)).shape
torch.reshape(x, (4, 3))
torch.movedim(b3, 0, -1).shape
torch.narrow(x, 0, 1, 2)
torch.roll(v, 2)
torch.rot90(x)
torch.broadcast_to(v, (2, 5))
torch.broadcast_tensors(x, v[:4])[1]
torch.argsort(x, dim=1)
torch.sort(x, dim=0)[0]
torch.min(x, dim=1)[0]
torch.amax(b3, dim=(1, 2))
torch.mean(b3, dim=[0, 2])
torch.var(x, dim=1)
torch.prod(pos, 1)
torch.sub(x, y, alpha=2)
torch.addcmul(x, y, x, value=0.5)
torch.addcdiv(x, y, pos + 1, value=2)
torch.lerp(x, y, pos)
torch.fmod(x, 0.5)
torch.remainder(x, 0.5)
torch.floor_divide(x, 0.5)
torch.maximum(x, torch.tensor(0.0))
torch.gt(x, y).float()
torch.eq(i, 2).sum()
i.flatten().bincount()
torch.unique(lab, return_inverse=True)
i.float().mean(1)
i.sort(dim=1).values
i.clamp(1, 3)
i // 2
torch.tensor([3, 1, 2]).topk(2).indices
r = x.clone(); r.sigmoid_()
r = x.clone(); r.tanh_()
r = x.clone(); r.abs_()
r = x.clone(); r.clamp_min_(0)
F.tanh(x)
F.sigmoid(x)
F.hardtanh(x, -0.5, 0.5)
F.elu(x, alpha=0.5)
F.glu(torch.cat([x, y], 1))
F.pad(x, (1, 2, 0, 1), mode='constant', value=1.0)
F.pad(img, (1, 1, 1, 1), mode='reflect')
F.pad(img, (2, 2, 2, 2), mode='replicate')
F.pad(seq, (1, 1), mode='circular')
F.avg_pool1d(seq, 2)
F.max_pool1d(seq, kernel_size=3, stride=1, padding=1)
F.adaptive_avg_pool1d(seq, 2)
F.adaptive_max_pool1d(seq, 1)
F.adaptive_max_pool2d(img, (2, 3))
F.max_pool2d(img, 2, return_indices=True)[1]
F.instance_norm(img)
F.group_norm(img, 3)
F.interpolate(seq, scale_factor=2, mode='linear', align_corners=False)
F.interpolate(img, size=16)
F.mse_loss(x, y, reduction='none')
F.l1_loss(x, y, reduction='sum')
F.cross_entropy(b3.transpose(1, 2), torch.zeros(2, 3, dtype=torch.long))
F.nll_loss(x.log_softmax(1), lab, reduction='sum')
F.binary_cross_entropy(pos, t01, reduction='none')
F.kl_div(x.log_softmax(1), y.log_softmax(1), reduction='batchmean', log_target=True)
F.normalize(v, dim=0)
F.one_hot(torch.arange(3), 3).float()
F.embedding(tok, torch.eye(10))
F.bilinear(x, y, torch.ones(2, 4, 4))
F.layer_norm(b3, (3, 4))
F.softplus(x, beta=2)
F.conv2d(img, torch.ones(2, 3, 1, 1))
F.conv1d(seq.transpose(1, 2), torch.ones(3, 4, 1), bias=torch.zeros(3))
F.conv_transpose2d(img, torch.ones(3, 2, 2, 2), stride=2)
nn.ReLU(inplace=True)(x.clone())
nn.Hardtanh(-1, 1)(x)
nn.GELU(approximate='tanh')(x)
nn.Mish()(x)
nn.SELU()(x)
nn.ReLU6()(x * 3)
nn.LogSigmoid()(x)
nn.MaxPool1d(2)(seq)
nn.AvgPool1d(2)(seq)
nn.AdaptiveMaxPool2d(1)(img)
nn.AdaptiveAvgPool1d(1)(seq)
nn.ReflectionPad2d(1)(img)
nn.ReplicationPad1d(2)(seq)
nn.ConstantPad1d(1, 0.5)(seq)
nn.ZeroPad1d((1, 0))(seq)
nn.InstanceNorm1d(5)(seq)
nn.InstanceNorm2d(3, affine=True)(img)
nn.GroupNorm(3, 3)(img)
nn.LayerNorm([3, 4])(b3)
nn.Identity(54)(x)
nn.Unflatten(1, (3, 64))(img.flatten(1)).shape
nn.Sequential()(x)
nn.MSELoss(reduction='sum')(x, y)
nn.L1Loss(reduction='none')(x, y)
nn.CrossEntropyLoss(label_smoothing=0.2)(x, lab)
nn.CrossEntropyLoss(ignore_index=1)(x, lab)
nn.BCEWithLogitsLoss(reduction='sum')(x, t01)
nn.NLLLoss(reduction='none')(x, lab)
nn.HuberLoss(delta=2.0)(x, y)
nn.SmoothL1Loss(beta=0.5)(x, y)
nn.init.constant_(torch.empty(2, 2), 0.3)
nn.init.eye_(torch.empty(3, 3))
nn.init.zeros_(torch.empty(2))
r = nn.Linear(4, 2); len(list(r.children()))
r = nn.Sequential(nn.Linear(4, 2), nn.ReLU()); len(r)
r = nn.Sequential(nn.Linear(4, 2), nn.ReLU()); [type(m).__name__ for m in r.children()]
r = nn.Sequential(nn.Linear(4, 2)); r.append(nn.ReLU()); len(r)
r = nn.ModuleList([nn.Linear(2, 2)]); r.append(nn.Linear(2, 2)); len(r)
r = nn.ParameterList([nn.Parameter(torch.ones(2))]); len(r)
r = nn.Linear(4, 2); [n for n, _ in r.named_modules()]
r = nn.Linear(4, 2); r.apply(lambda m: None) is r
r = nn.Linear(4, 2); r.half().weight.dtype
r = nn.Conv2d(3, 4, 3); r.bias.shape
r = nn.Conv2d(3, 4, 3, bias=False); r.bias is None
r = nn.BatchNorm1d(4); r.eval(); r(x)
r = nn.LayerNorm(4); r.weight.sum()
r = nn.Embedding.from_pretrained(torch.eye(4)); r(torch.tensor([1, 3]))
r = nn.Linear(4, 2); r.train(False); r.training
r = nn.Dropout(0.3); r.p
str(nn.Linear(4, 2))
repr(nn.ReLU())
repr(nn.Conv2d(3, 8, 3))
repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
nn.Module().training
r = nn.BatchNorm1d(4); sum(1 for _ in r.buffers())
r = x.clone().requires_grad_(); (r ** 2).sum().backward(); r.grad
w.sin().sum().backward(); w.grad
w.abs().sum().backward(); w.grad
(w.relu() ** 2).mean().backward(); w.grad
w.max().backward(); w.grad
w.norm().backward(); w.grad
(w * w2.t()[:3]).sum().backward(); w.grad
torch.autograd.grad(w.sum(), w)[0]
w.tanh().sum().backward(); w.grad
F.softmax(w, 1).max(1)[0].sum().backward(); w.grad
w.grad_fn is None
r = optim.SGD([w], lr=0.5); (w ** 2).sum().backward(); r.step(); r.zero_grad(); r = w
r = optim.Adam([w], lr=0.1, weight_decay=0.01); w.sum().backward(); r.step(); r = w
r = optim.AdamW([w], lr=0.1, amsgrad=True); (w ** 2).sum().backward(); r.step(); r = w
r = optim.SGD([w], lr=0.1, momentum=0.9, dampening=0.1); w.sum().backward(); r.step(); r.step(); r = w
r = optim.RMSprop([w], lr=0.01, momentum=0.9); (w ** 2).sum().backward(); r.step(); r = w
r = optim.Adagrad([w], lr=0.1, lr_decay=0.01); w.sum().backward(); r.step(); r.step(); r = w
r = optim.Adam([w], lr=0.1, maximize=True); w.sum().backward(); r.step(); r = w
r = optim.SGD([w], lr=0.1); r.defaults['lr']
r = optim.Adam([w]); r.param_groups[0]['betas']
s = lr_scheduler.StepLR(opt, step_size=1, gamma=0.1); opt.step(); s.step(); opt.param_groups[0]['lr']
s = lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=2); opt.step(); s.step(); s.get_last_lr()
s = lr_scheduler.PolynomialLR(opt, total_iters=4, power=2.0); opt.step(); s.step(); s.get_last_lr()
s = lr_scheduler.CosineAnnealingLR(opt, 4, 0.1); opt.step(); [s.step() for _ in 'abcdef']; s.get_last_lr()
s = lr_scheduler.MultiplicativeLR(opt, lambda e: 0.5); opt.step(); s.step(); s.get_last_lr()
list(DataLoader(TensorDataset(torch.arange(4)), batch_size=3))
[len(b[0]) for b in DataLoader(TensorDataset(x), batch_size=2)]
next(iter(DataLoader(TensorDataset(x, y), batch_size=3)))[1]
len(DataLoader(list(range(10)), batch_size=3))
next(iter(DataLoader([(1, 2.0), (3, 4.0)], batch_size=2)))
next(iter(DataLoader([{'a': 1}, {'a': 2}], batch_size=2)))
next(iter(DataLoader(TensorDataset(x), batch_size=2, collate_fn=lambda b: len(b))))
list(torch.utils.data.SequentialSampler(range(3)))
list(torch.utils.data.BatchSampler(range(5), 2, drop_last=False))
TensorDataset(x, y).tensors[0]
len(torch.utils.data.Subset(TensorDataset(x), [0, 1]))
torch.distributions.Normal(0.0, 2.0).icdf(pos)
torch.distributions.Normal(x, 1.0).mean
torch.distributions.Normal(0.0, 2.0).stddev
torch.distributions.Normal(0.0, 2.0).variance
torch.distributions.Uniform(0.0, 2.0).cdf(pos)
torch.distributions.Uniform(-1.0, 1.0).entropy()
torch.distributions.Bernoulli(probs=pos).mean
torch.tril_indices(3, 3)
torch.triu_indices(4, 4, 1)
torch.logaddexp(x, y)
torch.sinc(x)
torch.signbit(x)
torch.heaviside(x, torch.tensor([0.5]))
torch.distributions.kl_divergence(torch.distributions.Normal(x, 1.0), torch.distributions.Normal(0.0, 2.0))
D = torch.distributions; D.kl_divergence(D.Categorical(logits=x), D.Categorical(logits=y))
nn.CosineSimilarity(dim=1)(x, y)
nn.PairwiseDistance()(x, y)
torch.linalg.matrix_power(m, 3)
torch.linalg.multi_dot([x, a, a.t()])
torch.linalg.vecdot(x, y)
torch.arctan2(x, y)
pos.arccos()
torch.cdist(x, y, p=1)
torch.diag(x)
torch.diagonal(b3, dim1=1, dim2=2)
torch.flatten(b3, 0, 1)
x.unflatten(1, (2, 2))
torch.stack(x.unbind(1), 1)
torch.where(mask, 1.0, -1.0)
x.new_zeros(x.shape)
torch.zeros_like(x, dtype=torch.int64)
torch.ones(3, dtype=torch.bool)
torch.arange(4).view(2, 2).t().contiguous().view(-1)
x.index_select(0, lab[:2])
x.scatter(1, i[:, :1] % 4, 0.0)
x.exp().sum(1).log() - x.logsumexp(1)
x.trunc().int()
(x * 100).long()
x.half().float()
x.bfloat16().float()
torch.tensor([1, 2, 3]).to(torch.float16).sum()
F.softmax(x.double(), 1).dtype
torch.finfo(torch.bfloat16).eps
torch.iinfo(torch.int8).min
x.stride()
x.t().stride()
x[1:].storage_offset()
b3.shape[1:]
torch.numel(x)
x.T @ x
torch.tensordot(x, a, dims=1)
torch.block_diag(x, y).shape
torch.cartesian_prod(torch.arange(2), torch.arange(3))
torch.diff(v)
torch.cummax(v, 0)
torch.nansum(x / (x > 0))
torch.nanmean(x / (x > 0))
F.softmin(x, dim=1)
F.hardswish(x)
F.unfold(img, 2).shape
x.tile((2, 1))
torch.distributions.Exponential(pos + 0.5).log_prob(pos)
torch.distributions.Laplace(x, 1.0).log_prob(y)
torch.distributions.Laplace(0.0, 2.0).cdf(x)
torch.distributions.Independent(torch.distributions.Normal(x, 1.0), 1).log_prob(y)
torch.distributions.Independent(torch.distributions.Normal(x, pos + 0.1), 1).entropy()
torch.distributions.Normal(x, 1.0).log_prob(y).sum(-1)
"""

# Random draws and fresh weights: dtype and shape are compared.
MORE_SHAPE = r"""
torch.randn(4, 4).triu()
torch.rand(2, 3) * 2 - 1
torch.randint(0, 2, (3, 3)).bool()
torch.randn(3, requires_grad=True)
torch.normal(torch.zeros(3), torch.ones(3))
torch.normal(2.0, torch.ones(2, 2))
torch.empty(2, 3).normal_()
torch.empty(4).exponential_()
torch.randn(5).sort()[0]
nn.InstanceNorm1d(4, affine=True)(seq.transpose(1, 2))
nn.Bilinear(4, 4, 3, bias=False)(x, y)
nn.Linear(4, 3).weight.T
nn.MaxPool1d(2, return_indices=True)(seq)[1]
nn.Conv2d(3, 4, (3, 1))(img)
nn.Conv2d(3, 4, 3, padding=(1, 0))(img)
nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))(img)
nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.GELU())(x)
nn.GRU(4, 3, num_layers=2, batch_first=True)(seq)[1]
nn.LSTM(4, 3, batch_first=True, bidirectional=True)(seq)[1][0]
nn.Embedding(10, 3, max_norm=1.0)(tok)
nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True)(seq)
nn.init.xavier_normal_(torch.empty(4, 4))
torch.distributions.Normal(torch.zeros(2), torch.ones(2)).sample((4,))
torch.distributions.Categorical(logits=torch.zeros(5)).sample((3,))
torch.distributions.Bernoulli(0.3).sample((2,))
torch.multinomial(torch.ones(4), 4)
torch.randperm(6)[:3]
torch.utils.data.random_split(range(10), [7, 3])[1][0]
torch.rand(3).argsort()
torch.randn(2, 3).softmax(-1).sum(-1)
nn.Linear(4, 2)(x).softmax(-1)
nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)).eval()(x)
nn.Embedding(10, 4)(tok).mean(1)
nn.Conv1d(4, 8, 3, padding='same')(seq.transpose(1, 2))
nn.Upsample(scale_factor=2, mode='bilinear')(img)
torch.randn(2, 3) @ torch.randn(3, 4)
torch.distributions.Exponential(torch.ones(3)).rsample((2,))
torch.distributions.Laplace(x, 1.0).sample()
torch.distributions.Independent(torch.distributions.Normal(x, 1.0), 1).rsample()
"""

# Printing, profiling and file writes: they only have to run.
MORE_RUNS = r"""
str(x)
repr(b3)
torch.set_printoptions(sci_mode=False); torch.set_printoptions(profile='default')
with torch.autograd.profiler.record_function('block'): r = x + 1
nn.Linear(4, 2).reset_parameters()
torch.save(nn.Linear(2, 2).state_dict(), path)
torch.nn.utils.clip_grad_norm_(nn.Linear(2, 2).parameters(), 1.0)
"""
