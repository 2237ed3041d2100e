"""Idioms of nn layers, F functions, losses, autograd, optimizers, schedulers, utils.data and
distributions; see tests/torch_idioms_list.py for the names they use and how they are compared."""

NN_VALUE = r"""
F.relu(x)
F.gelu(x)
F.gelu(x, approximate='tanh')
F.silu(x)
F.elu(x)
F.leaky_relu(x, 0.1)
F.softplus(x)
F.mish(x)
F.hardtanh(x)
F.relu6(x * 4)
F.selu(x)
F.logsigmoid(x)
F.softmax(x, dim=-1)
F.log_softmax(x, dim=-1)
F.normalize(x, dim=1)
F.normalize(x, p=2, dim=-1)
F.one_hot(lab, num_classes=4)
F.one_hot(lab)
F.pad(x, (1, 1))
F.pad(img, (1, 1, 1, 1)).shape
F.pad(x, (0, 2), value=-1.0)
F.linear(x, a.t())
F.linear(x, a.t(), v)
F.conv2d(img, torch.ones(4, 3, 3, 3))
F.conv2d(img, torch.ones(4, 3, 3, 3), padding=1, stride=2)
F.conv2d(img, torch.ones(3, 1, 3, 3), groups=3)
F.conv1d(seq.transpose(1, 2), torch.ones(2, 4, 3))
F.max_pool2d(img, 2)
F.max_pool2d(img, kernel_size=3, stride=2, padding=1)
F.avg_pool2d(img, 2)
F.adaptive_avg_pool2d(img, 1)
F.adaptive_avg_pool2d(img, (2, 2))
F.adaptive_max_pool2d(img, 1)
F.max_pool1d(seq, 2)
F.interpolate(img, scale_factor=2, mode='nearest')
F.interpolate(img, size=(4, 4), mode='bilinear', align_corners=False)
F.layer_norm(x, (4,))
F.batch_norm(img, torch.zeros(3), torch.ones(3), training=False)
F.dropout(x, p=0.5, training=False)
F.embedding(tok % 4, a)
F.cosine_similarity(x, y)
F.cosine_similarity(x, y, dim=0)
F.pairwise_distance(x, y)
F.scaled_dot_product_attention(b3, b3, b3)
F.scaled_dot_product_attention(b3, b3, b3, is_causal=True)
F.cross_entropy(x, lab)
F.cross_entropy(x, lab, reduction='none')
F.cross_entropy(x, lab, label_smoothing=0.1)
F.cross_entropy(x, torch.tensor([0, -100, 2]), ignore_index=-100)
F.cross_entropy(x, pos.softmax(1))
F.nll_loss(F.log_softmax(x, 1), lab)
F.mse_loss(x, y)
F.mse_loss(x, y, reduction='sum')
F.l1_loss(x, y)
F.smooth_l1_loss(x, y)
F.huber_loss(x, y, delta=0.5)
F.binary_cross_entropy(pos, t01)
F.binary_cross_entropy_with_logits(x, t01)
F.binary_cross_entropy_with_logits(x, t01, pos_weight=torch.full((4,), 2.0))
F.kl_div(F.log_softmax(x, 1), F.softmax(y, 1), reduction='batchmean')
F.cosine_embedding_loss(x, y, torch.tensor([1, -1, 1]))
F.margin_ranking_loss(v, u, torch.ones(5))
nn.CrossEntropyLoss()(x, lab)
nn.MSELoss()(x, y)
nn.L1Loss()(x, y)
nn.BCELoss()(pos, t01)
nn.BCEWithLogitsLoss()(x, t01)
nn.NLLLoss()(x.log_softmax(1), lab)
nn.SmoothL1Loss()(x, y)
nn.HuberLoss()(x, y)
nn.KLDivLoss(reduction='batchmean')(x.log_softmax(1), y.softmax(1))
nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 1.0, 0.5]))(x, lab)
nn.ReLU()(x)
nn.GELU()(x)
nn.SiLU()(x)
nn.Tanh()(x)
nn.Sigmoid()(x)
nn.LeakyReLU(0.2)(x)
nn.ELU()(x)
nn.Softmax(dim=1)(x)
nn.LogSoftmax(dim=-1)(x)
nn.Identity()(x)
nn.Flatten()(img)
nn.Flatten(0)(x)
nn.Unflatten(1, (2, 2))(x)
nn.Dropout(0.5).eval()(x)
nn.MaxPool2d(2)(img)
nn.AvgPool2d(2, stride=2)(img)
nn.AdaptiveAvgPool2d((1, 1))(img)
nn.Upsample(scale_factor=2)(img)
nn.ZeroPad2d(1)(img)
nn.LayerNorm(4)(x)
nn.LayerNorm(4, elementwise_affine=False)(x)
nn.BatchNorm1d(4)(x)
nn.BatchNorm2d(3)(img)
nn.BatchNorm2d(3).eval()(img)
nn.GroupNorm(1, 3)(img)
nn.InstanceNorm2d(3)(img)
nn.Softplus()(x)
r = nn.Linear(4, 3); nn.init.zeros_(r.weight); nn.init.ones_(r.bias); r = r(x)
r = nn.Linear(4, 3, bias=False); nn.init.constant_(r.weight, 0.5); r = r(x)
r = nn.Linear(4, 2); r.weight.data.fill_(1.0); r.bias.data.zero_(); r = r(x)
r = nn.Linear(4, 2); r.load_state_dict({'weight': torch.ones(2, 4), 'bias': torch.zeros(2)}); r = r(x)
r = nn.Embedding(10, 4); r.weight.data.copy_(torch.ones(10, 4)); r = r(tok)
r = nn.Conv2d(3, 2, 3, padding=1, bias=False); nn.init.ones_(r.weight); r = r(img)
r = nn.Linear(4, 3); sum(p.numel() for p in r.parameters())
r = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)); sum(p.numel() for p in r.parameters() if p.requires_grad)
r = nn.Sequential(nn.Linear(4, 8), nn.ReLU()); [n for n, _ in r.named_parameters()]
r = nn.Sequential(nn.Linear(4, 8), nn.ReLU()); list(r.state_dict().keys())
r = nn.Linear(4, 3); [k for k in r.state_dict()]
r = nn.BatchNorm2d(3); list(r.state_dict())
r = nn.BatchNorm1d(4); r(x); r.running_mean
r = nn.BatchNorm1d(4); r(x); r.num_batches_tracked
r = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)]); len(r)
r = nn.ModuleDict({'a': nn.Linear(4, 2)}); list(r.keys())
r = nn.Linear(4, 3); r.training
r = nn.Linear(4, 3).eval(); r.training
r = nn.Sequential(nn.Linear(4, 3), nn.Dropout()); r.eval(); r[1].training
r = nn.Sequential(nn.Linear(4, 3)); len(list(r.modules()))
r = nn.Linear(4, 3); r.weight.shape
r = nn.Conv2d(3, 8, 3); r.weight.shape
r = nn.Linear(4, 3); r.requires_grad_(False); r.weight.requires_grad
r = nn.Linear(4, 3); r.weight.dtype
r = nn.Linear(4, 3).double(); r.weight.dtype
r = nn.Linear(4, 3); r.to(torch.float64); r.bias.dtype
r = nn.Linear(4, 3); isinstance(r.weight, nn.Parameter)
nn.Parameter(torch.zeros(3)).requires_grad
r = nn.Linear(4, 3); r.register_buffer('scale', torch.ones(3)); list(r.state_dict())
r = nn.Linear(4, 3); r.zero_grad(); r.weight.grad
(w * w).sum().backward(); w.grad
r = (w ** 3).mean(); r.backward(); r = w.grad
(w.exp() * 2).sum().backward(); w.grad
r = (w @ w2).relu().sum(); r.backward(); r = (w.grad, w2.grad)
F.cross_entropy(w, lab).backward(); w.grad
F.mse_loss(w, y).backward(); w.grad
w.softmax(1)[:, 0].sum().backward(); w.grad
(w.sum() * 2).backward(); w.grad
w.sum().backward(); w.sum().backward(); w.grad
r = w.sum(); r.backward(); w.grad.zero_(); (2 * w).sum().backward(); r = w.grad
torch.autograd.grad((w ** 2).sum(), w)
torch.autograd.grad((w ** 2).sum(), [w, w2], allow_unused=True)[1]
r = (w ** 3).sum(); g, = torch.autograd.grad(r, w, create_graph=True); g.sum().backward(); r = w.grad
r = w * 2; r.backward(torch.ones_like(r)); r = w.grad
r = w.detach(); r.requires_grad
r = x.clone().requires_grad_(); r.requires_grad
r = x.clone().requires_grad_(True); (r * 3).sum().backward(); r.grad
r = w * 2; r.requires_grad
r = w * 2; r.is_leaf
w.is_leaf
r = w * 2; r.grad_fn is not None
w.grad is None
with torch.no_grad(): r = w * 2
torch.is_grad_enabled()
with torch.no_grad(): r = torch.is_grad_enabled()
with torch.enable_grad(): r = (w * 2).requires_grad
with torch.set_grad_enabled(False): r = (w * 2).requires_grad
with torch.inference_mode(): r = (w + 1).requires_grad
r = w.detach().numpy()
w.data.shape
r = w.clone(); r.retain_grad(); (r * r).sum().backward(); r = r.grad
r = w.sum(); r.backward(retain_graph=True); r.backward(); r = w.grad
r = torch.zeros(3, requires_grad=True); r.requires_grad
torch.ones(2, requires_grad=True).sum().item()
r = w.clone(); r.register_hook(lambda g: g * 2); r.sum().backward(); r = w.grad
torch.autograd.functional.jacobian(lambda t: t ** 2, v)
torch.autograd.functional.hessian(lambda t: (t ** 3).sum(), v)
(w * w).sum().backward(); torch.nn.utils.clip_grad_norm_([w], 1.0)
r = (w * 10).sum(); r.backward(); torch.nn.utils.clip_grad_norm_([w], max_norm=1.0); r = w.grad
r = (w * 10).sum(); r.backward(); torch.nn.utils.clip_grad_value_([w], 0.5); r = w.grad
torch.nn.utils.parameters_to_vector([w, w2])
r = torch.optim.SGD([w], lr=0.1); (w ** 2).sum().backward(); r.step(); r = w
r = torch.optim.SGD([w], lr=0.1, momentum=0.9); (w ** 2).sum().backward(); r.step(); r.step(); r = w
r = optim.SGD([w], weight_decay=0.01, nesterov=True, momentum=0.9); w.sum().backward(); r.step(); r = w
r = torch.optim.Adam([w], lr=0.01); (w ** 2).sum().backward(); r.step(); r = w
r = torch.optim.Adam([w], lr=0.01, betas=(0.8, 0.9)); w.sum().backward(); r.step(); r.step(); r = w
r = torch.optim.AdamW([w], lr=0.01, weight_decay=0.1); (w ** 2).sum().backward(); r.step(); r = w
r = torch.optim.RMSprop([w], lr=0.01); (w ** 2).sum().backward(); r.step(); r = w
r = torch.optim.Adagrad([w], lr=0.1); (w ** 2).sum().backward(); r.step(); r = w
r = torch.optim.Adamax([w], lr=0.1); (w ** 2).sum().backward(); r.step(); r = w
r = torch.optim.NAdam([w], lr=0.1); (w ** 2).sum().backward(); r.step(); r = w
r = torch.optim.RAdam([w], lr=0.1); (w ** 2).sum().backward(); r.step(); r = w
r = torch.optim.SGD([w], lr=0.1); (w ** 2).sum().backward(); r.zero_grad(); r = w.grad
r = torch.optim.SGD([w], lr=0.1); (w ** 2).sum().backward(); r.zero_grad(set_to_none=False); r = w.grad
r = torch.optim.SGD([w], lr=0.1); r.param_groups[0]['lr']
r = torch.optim.Adam([w], lr=0.1); r.param_groups[0]['lr'] = 0.5; r.param_groups[0]['lr']
r = optim.SGD([{'params': [w], 'lr': 0.1}, {'params': [w2]}], lr=0.01); [g['lr'] for g in r.param_groups]
r = torch.optim.SGD([w], lr=0.1); r.add_param_group({'params': [w2], 'lr': 0.2}); len(r.param_groups)
r = torch.optim.Adam([w]); w.sum().backward(); r.step(); list(r.state_dict().keys())
r = torch.optim.Adam([w]); w.sum().backward(); r.step(); r.state_dict()['param_groups'][0]['lr']
r = optim.Adam([w], lr=0.1); r.load_state_dict(optim.Adam([w], lr=0.3).state_dict()); r.param_groups[0]['lr']
r = torch.optim.SGD(nn.Linear(4, 2).parameters(), lr=0.1); len(r.param_groups[0]['params'])
s = lr_scheduler.StepLR(opt, 2, gamma=0.5); opt.step(); [s.step() for _ in range(3)]; s.get_last_lr()
s = lr_scheduler.CosineAnnealingLR(opt, T_max=10); opt.step(); [s.step() for _ in range(3)]; s.get_last_lr()
s = lr_scheduler.LambdaLR(opt, lambda e: 0.9 ** e); opt.step(); [s.step() for _ in range(3)]; s.get_last_lr()
s = lr_scheduler.ExponentialLR(opt, gamma=0.9); opt.step(); s.step(); s.get_last_lr()
s = lr_scheduler.MultiStepLR(opt, [1, 2], 0.1); opt.step(); [s.step() for _ in range(3)]; s.get_last_lr()
s = lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=4); opt.step(); s.step(); s.get_last_lr()
s = lr_scheduler.OneCycleLR(opt, 1.0, total_steps=10); opt.step(); [s.step() for _ in 'abc']; s.get_last_lr()
s = lr_scheduler.ReduceLROnPlateau(opt, patience=0); s.step(1.0); s.step(1.0); opt.param_groups[0]['lr']
s = lr_scheduler.CosineAnnealingWarmRestarts(opt, 2); opt.step(); [s.step() for _ in 'abc']; s.get_last_lr()
s = lr_scheduler.StepLR(opt, 1); opt.step(); s.step(); s.state_dict()['last_epoch']
TensorDataset(x, lab)[1]
len(TensorDataset(x, lab))
[b for b, _ in DataLoader(TensorDataset(x, lab), batch_size=2)]
len(DataLoader(TensorDataset(x, lab), batch_size=2))
len(DataLoader(TensorDataset(x, lab), batch_size=2, drop_last=True))
next(iter(DataLoader(TensorDataset(x, lab), batch_size=3)))
[len(s) for s in torch.utils.data.random_split(TensorDataset(x), [2, 1])]
torch.utils.data.Subset(TensorDataset(x), [0, 2])[1]
len(torch.utils.data.ConcatDataset([TensorDataset(x), TensorDataset(y)]))
next(iter(DataLoader(list(range(6)), batch_size=4)))
torch.distributions.Normal(0.0, 1.0).log_prob(x)
torch.distributions.Normal(x, pos + 0.1).log_prob(y)
torch.distributions.Normal(x, 1.0).entropy()
torch.distributions.Categorical(logits=x).log_prob(lab)
torch.distributions.Categorical(probs=x.softmax(1)).entropy()
torch.distributions.Categorical(logits=x).probs
torch.distributions.Bernoulli(probs=pos).log_prob(t01)
torch.distributions.Bernoulli(logits=x).entropy()
torch.distributions.Uniform(0.0, 2.0).log_prob(pos)
torch.distributions.Normal(0.0, 1.0).cdf(x)
"""

# Fresh layer weights and random draws: dtype and shape are compared.
NN_SHAPE = r"""
F.dropout(x, p=0.5)
F.dropout(x, 0.2, training=True)
nn.Dropout(0.1)(x)
nn.Dropout2d(0.5)(img)
nn.Linear(4, 3)(x)
nn.Linear(4, 3, bias=False)(x)
nn.Bilinear(4, 4, 2)(x, y)
nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))(x)
nn.Conv2d(3, 8, 3)(img)
nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)(img)
nn.Conv2d(3, 6, 3, padding='same')(img)
nn.Conv2d(3, 6, 3, groups=3)(img)
nn.Conv2d(3, 4, 3, dilation=2)(img)
nn.Conv1d(4, 6, 3)(seq.transpose(1, 2))
nn.Conv1d(4, 6, 3, padding=1)(seq.transpose(1, 2))
nn.ConvTranspose2d(3, 2, 2, stride=2)(img)
nn.ConvTranspose1d(4, 2, 3)(seq.transpose(1, 2))
nn.Embedding(10, 4)(tok)
nn.Embedding(10, 4, padding_idx=0)(tok)
nn.Embedding(10, 4).weight
nn.LSTM(4, 6)(seq.transpose(0, 1))[0]
nn.LSTM(4, 6, batch_first=True)(seq)[0]
nn.LSTM(4, 6, batch_first=True)(seq)[1][0]
nn.LSTM(4, 6, num_layers=2, batch_first=True)(seq)[1][1]
nn.LSTM(4, 6, bidirectional=True, batch_first=True)(seq)[0]
nn.GRU(4, 6, batch_first=True)(seq)[0]
nn.GRU(4, 6)(seq)[1]
nn.RNN(4, 6, batch_first=True)(seq)[0]
nn.LSTMCell(4, 6)(seq[:, 0])[0]
nn.GRUCell(4, 6)(seq[:, 0])
nn.MultiheadAttention(4, 2)(seq, seq, seq)[0]
nn.MultiheadAttention(4, 2, batch_first=True)(seq, seq, seq)[0]
nn.MultiheadAttention(4, 2, batch_first=True)(seq, seq, seq)[1]
nn.MultiheadAttention(4, 2, batch_first=True)(seq, seq, seq, need_weights=False)[0]
nn.MultiheadAttention(4, 1, batch_first=True)(seq, seq, seq, key_padding_mask=tok == 0)[0]
nn.MultiheadAttention(4, 2, batch_first=True)(seq, seq, seq, attn_mask=torch.ones(5, 5).triu(1).bool())[0]
nn.TransformerEncoderLayer(d_model=4, nhead=2, dim_feedforward=8, batch_first=True).eval()(seq)
nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8, batch_first=True), num_layers=2).eval()(seq)
nn.TransformerDecoderLayer(4, 2, 8, batch_first=True).eval()(seq, seq)
nn.PReLU()(x)
nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())(img)
nn.init.xavier_uniform_(torch.empty(3, 4))
nn.init.kaiming_normal_(torch.empty(3, 4))
nn.init.kaiming_uniform_(torch.empty(3, 4), a=math.sqrt(5))
nn.init.normal_(torch.empty(3, 4), std=0.02)
nn.init.trunc_normal_(torch.empty(3, 4), std=0.02)
nn.init.uniform_(torch.empty(3, 4), -0.1, 0.1)
nn.init.orthogonal_(torch.empty(3, 4))
torch.distributions.Normal(0.0, 1.0).sample((3,))
torch.distributions.Normal(x, 1.0).rsample()
torch.distributions.Categorical(logits=x).sample()
torch.distributions.Categorical(probs=pos).sample((2,))
torch.distributions.Bernoulli(probs=pos).sample()
torch.distributions.Uniform(0.0, 1.0).sample((2, 2))
[b.shape for b, _ in DataLoader(TensorDataset(x, lab), batch_size=2, shuffle=True)]
torch.utils.data.random_split(TensorDataset(x), [0.5, 0.5], torch.Generator().manual_seed(0))[0][0]
next(iter(DataLoader(TensorDataset(x), batch_size=2, sampler=torch.utils.data.RandomSampler(range(3)))))
torch.linalg.qr(m)[0]
torch.linalg.eigh(m)[1]
torch.linalg.svd(x, full_matrices=False)[0]
torch.fft.rfft(sig)
torch.fft.fft(sig)
F.gumbel_softmax(x, tau=1.0)
F.gumbel_softmax(x, hard=True)
"""

# Printing, moving, hooks, profilers: these only have to run.
NN_RUNS = r"""
print(x)
repr(x)
str(torch.zeros(2))
nn.Linear(4, 3)
print(nn.Sequential(nn.Linear(4, 8), nn.ReLU()))
torch.manual_seed(42)
torch.set_printoptions(precision=4)
torch.set_num_threads(torch.get_num_threads())
torch.get_num_threads()
torch.cuda.is_available()
torch.device('cuda' if torch.cuda.is_available() else 'cpu')
torch.device('cpu')
x.to(torch.device('cpu'))
nn.Linear(4, 3).to('cpu')
r = nn.Linear(4, 3); r.apply(lambda mod: None)
r = nn.Linear(4, 3); r.train(); r.eval()
r = nn.Linear(4, 3); r.cpu()
nn.Linear(4, 3).parameters()
r = nn.Linear(4, 3); list(r.children())
r = nn.Sequential(nn.Linear(4, 3)); list(r.named_modules())
r = nn.Sequential(nn.Linear(4, 3)); r.add_module('act', nn.ReLU())
r = nn.Sequential(nn.Linear(4, 3)); r.append(nn.ReLU())
r = nn.Linear(4, 3); r.register_forward_hook(lambda mod, inp, out: None); r(x)
r = w * 2; r.grad_fn.name()
r = w * 2; r.grad_fn.next_functions
torch.utils.checkpoint.checkpoint(lambda t: t.relu() * 2, w, use_reentrant=False).sum().backward()
torch.autograd.set_detect_anomaly(False)
with torch.autograd.profiler.profile() as prof: r = x @ a
with torch.profiler.profile() as prof: r = x @ a
with torch.profiler.record_function('block'): r = x @ a
torch.optim.SGD([w], lr=0.1).state_dict()
lr_scheduler.StepLR(torch.optim.SGD([w], lr=0.1), 1)
DataLoader(TensorDataset(x), batch_size=2, num_workers=0)
torch.utils.data.Dataset
torch.utils.data.SequentialSampler(range(3))
torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(5)), 2, False)
torch.nn.utils.rnn.pad_sequence([torch.ones(2), torch.ones(3)], batch_first=True)
torch.nn.utils.rnn.pack_padded_sequence(seq, torch.tensor([5, 3]), batch_first=True)
torch.backends
torch.no_grad()(lambda: x * 2)()
"""
