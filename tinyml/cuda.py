"""`tinyml.cuda`: the cuda device's public helpers, with torch.cuda's names.

    tinyml.cuda.is_available()        a GPU through the driver, or TRITON_INTERPRET=1 emulation
    tinyml.cuda.memory_allocated()    bytes held by live tensors (the caching allocator's count)
    tinyml.cuda.max_memory_allocated(), reset_peak_memory_stats(), memory_reserved(), empty_cache()
    tinyml.cuda.synchronize(), tinyml.cuda.Event(enable_timing=True)
"""
from .backends.cuda import (Event, device_name, emulated, empty_cache, is_available, max_memory_allocated,
                            memory_allocated, memory_reserved, reset_peak_memory_stats, synchronize)

__all__ = ["Event", "device_name", "emulated", "empty_cache", "is_available", "max_memory_allocated",
           "memory_allocated", "memory_reserved", "reset_peak_memory_stats", "synchronize", "device_count"]


def device_count() -> int:
    return 1 if is_available() else 0
