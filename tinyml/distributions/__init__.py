"""tinyml.distributions, as torch.distributions: Normal, Uniform, Exponential, Laplace (reparameterisable,
rsample; with cdf and icdf), Bernoulli and Categorical (probs or logits), each with sample, log_prob,
entropy, mean and variance; Independent (the last batch dims as event dims); kl_divergence between two
of the same family (register_kl adds rules); and torch's argument validation (validate_args)."""
from .continuous import Normal, Uniform
from .discrete import Bernoulli, Categorical
from .distribution import Distribution, constraints
from .kl import kl_divergence, register_kl
from .more import Exponential, Independent, Laplace

__all__ = ["Bernoulli", "Categorical", "Distribution", "Exponential", "Independent", "Laplace", "Normal",
           "Uniform", "constraints", "kl_divergence", "register_kl"]
