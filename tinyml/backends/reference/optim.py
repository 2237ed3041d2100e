"""Reference optimizer kernels (numpy): one call updates a list of parameters of one dtype in place.

adam_step (PyTorch's single-tensor Adam/AdamW, in the same operation order):
    Adam:   g <- g + wd p                      AdamW: p <- p (1 - lr wd)
    m <- m + (g - m)(1 - beta1)                v <- beta2 v + (1 - beta2) g^2
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

adam_amsgrad_step: as adam_step, with vmax <- max(vmax, v) used in place of v.

sgd_step (PyTorch's SGD):
    d = -g if maximize else g;  d <- d + wd p
    momentum: buf <- d (first step) or momentum buf + (1 - dampening) d;  d = d + momentum buf
              (nesterov) or buf
    p <- p - lr d

Gradients are read, never written. Arithmetic stays in the parameters' dtype, as in PyTorch.
"""
import numpy as np

__all__ = ["adam_amsgrad_step", "adam_step", "sgd_step"]


def _adam_one(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    dt = p.dtype.type
    if weight_decay != 0:
        if decoupled:
            p *= dt(1 - lr * weight_decay)
        else:
            g = g + dt(weight_decay) * p
    m += (g - m) * dt(1 - beta1)
    v *= dt(beta2)
    v += dt(1 - beta2) * g * g
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        v = vmax
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    denom = np.sqrt(v) / dt(bias_correction2_sqrt) + dt(eps)
    p -= dt(lr / bias_correction1) * (m / denom)


def adam_step(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    """Adam (decoupled=False) or AdamW (decoupled=True) over lists of same-dtype arrays, in place;
    `step` is the 1-based step count after this update."""
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        _adam_one(p, g, m, v, None, lr, beta1, beta2, eps, weight_decay, step, decoupled)


def adam_amsgrad_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps,
                      weight_decay, step, decoupled):
    """adam_step with AMSGrad: the running maximum of exp_avg_sq (updated in place) normalises."""
    for p, g, m, v, vmax in zip(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
        _adam_one(p, g, m, v, vmax, lr, beta1, beta2, eps, weight_decay, step, decoupled)


def sgd_step(params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """SGD over lists of same-dtype arrays, in place. `momentum_buffers[i]` is None before the
    first step with momentum; returns the list of buffers (new ones created from that step's
    direction, as PyTorch does), or Nones when momentum is 0."""
    out = []
    for p, g, buf in zip(params, grads, momentum_buffers):
        dt = p.dtype.type
        d = -g if maximize else g
        if weight_decay != 0:
            d = d + dt(weight_decay) * p
        if momentum != 0:
            if buf is None:
                buf = np.array(d, copy=True)
            else:
                buf *= dt(momentum)
                buf += dt(1 - dampening) * d
            d = d + dt(momentum) * buf if nesterov else buf
        p -= dt(lr) * d
        out.append(buf)
    return out
