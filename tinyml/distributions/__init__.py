"""tinyml.distributions, as torch.distributions: Normal, Uniform (reparameterisable, rsample),
Bernoulli and Categorical (probs or logits), each with sample, log_prob, entropy, mean and variance,
and torch's argument validation (validate_args)."""
from .continuous import Normal, Uniform
from .discrete import Bernoulli, Categorical
from .distribution import Distribution, constraints

__all__ = ["Bernoulli", "Categorical", "Distribution", "Normal", "Uniform", "constraints"]
