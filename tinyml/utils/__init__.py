"""Utilities: cpp_extension (build your own C++ kernels at run time), data (torch.utils.data's
datasets, samplers and DataLoader), checkpoint (activation checkpointing)."""
from . import checkpoint, cpp_extension, data  # noqa: F401
