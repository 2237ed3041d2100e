"""Host memory: keep the buffers a training step frees for the next step, instead of handing them
back to the operating system and faulting them in again.

numpy takes its array memory from the C library's malloc. glibc's malloc serves a request of
128 KiB or more with an mmap of its own and unmaps it on free (the threshold rises only to sizes
already freed), and gives the free top of its heap back once it exceeds M_TRIM_THRESHOLD. A
training step frees and reallocates the same activation and gradient arrays (0.1 to 10 MB) every
step, so each came back as fresh zero-filled pages: a training loop of the baby GPT preset of
bench/gpt_cpu.py took 6,400 page faults and 16 ms of kernel time per step of 85 ms (1 thread);
PyTorch's step takes 320 (docs/cpu_speed.md).

    M_MMAP_THRESHOLD = 32 MiB     requests below it come from malloc's heaps (its maximum)
    M_TRIM_THRESHOLD = 1 GiB      free heap memory up to this stays in the process
    M_MMAP_MAX = 0                no request gets an mmap of its own: larger ones come from the
                                  heap too (a thread's arena still maps what its heap cannot hold)

The last one is for arrays above the 32 MiB cap: a 4096 x 3072 activation (48 MiB) or a (1024,
50304) logits gradient (196 MiB) was otherwise mapped, faulted in and zero-filled by the kernel on
every call (536 and 740 faults per call; cross_entropy's backward took 58 ms instead of 29 on 2
threads, gelu's forward 19 instead of 12; docs/cpu_speed.md "Session 11").

With these, freed buffers wait in malloc's free lists and the next step reuses them (about 20
faults per step). The price is the one a caching allocator asks (PyTorch's CUDA allocator): the
process keeps up to 1 GiB of freed heap mapped; `release_host_memory()` returns it
(malloc_trim(0)). tinyml sets this on its first cpu kernel (`tinyml.backends`), on glibc only;
`TINYML_HOST_MALLOC=default` leaves malloc as it was (set it before the first op).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD = 32 << 20  # glibc refuses more than HEAP_MAX_SIZE / 2 (32 MiB on 64-bit)
TRIM_THRESHOLD = 1 << 30

# What tune_host_malloc did: None (not yet), "tuned", or why it left malloc alone.
state: str | None = None


def _libc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_host_malloc() -> str:
    """Raise glibc's mmap and trim thresholds once per process (see the module docstring).
    Returns (and records in `state`) "tuned", "disabled by TINYML_HOST_MALLOC=default",
    "not glibc" or "mallopt refused"."""
    global state
    if state is not None:
        return state
    if os.environ.get("TINYML_HOST_MALLOC", "").lower() == "default":
        state = "disabled by TINYML_HOST_MALLOC=default"
        return state
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        state = "not glibc"
        return state
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
          and libc.mallopt(M_MMAP_MAX, 0))
    state = "tuned" if ok else "mallopt refused"
    return state


def release_host_memory() -> bool:
    """Give the free heap memory malloc keeps back to the operating system (glibc's
    malloc_trim(0)); True if some was released. A no-op returning False elsewhere."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    return bool(libc.malloc_trim(0))
