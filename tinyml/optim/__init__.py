"""tinyml.optim: SGD, Adam, AdamW over fused kernels; RMSprop, Adagrad, Adamax, NAdam, RAdam, Lion as
plain tensor math; and learning-rate schedulers.

    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = tinyml.optim.lr_scheduler.get_cosine_schedule_with_warmup(opt, 100, 1000)
    loss.backward(); opt.step(); sched.step(); opt.zero_grad()
"""
from . import lr_scheduler  # noqa: F401
from .adagrad import Adagrad  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .adamax import Adamax  # noqa: F401
from .lion import Lion  # noqa: F401
from .nadam import NAdam  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .radam import RAdam  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .sgd import SGD  # noqa: F401
