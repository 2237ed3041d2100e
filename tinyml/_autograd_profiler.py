"""`tinyml.autograd.profiler`, as torch.autograd.profiler (profile with key_averages, record_function):
it is tinyml.profiler. tinyml.autograd takes `autograd_getattr` below as its module __getattr__, so the
profiler loads on first use; an import at autograd's top would be a cycle (tinyml.profiler imports it)."""


def autograd_getattr(name: str):
    if name == "profiler":
        from . import profiler  # on first use: tinyml.profiler imports tinyml.autograd

        return profiler
    raise AttributeError(f"module 'tinyml.autograd' has no attribute {name!r}")
