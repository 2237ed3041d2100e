"""Random number generation for tinyml: one global generator, reproducible with `manual_seed`, and
`Generator` objects (torch.Generator) for independent streams.

Random numbers are drawn on the host with numpy's PCG64 and copied to the target device, so a
seed gives the same values on cpu and cuda. Every random function takes `generator=` where
PyTorch's does: None draws from the global generator, a `Generator` from its own stream (a
numpy np.random.Generator is accepted too, as before Generator existed).
"""
from __future__ import annotations

import numpy as np

from .device import as_device

_generator = np.random.Generator(np.random.PCG64(0))
_initial_seed = 0

# torch.Generator()'s seed before manual_seed (torch's default_rng_seed_val)
DEFAULT_SEED = 67280421310721
_STATE_BYTES = 16 + 16 + 1 + 4 + 8  # PCG64 state, increment, has_uint32, uinteger; the initial seed


def _check_seed(seed) -> int:
    """PyTorch's seed range: [-2^63, 2^64); a negative seed wraps to 2^64 + seed."""
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__} ({seed!r})")
    seed = int(seed)
    if not -(1 << 63) <= seed < (1 << 64):
        raise RuntimeError(f"Overflow when unpacking long: seed {seed} is outside [-2^63, 2^64)")
    return seed + (1 << 64) if seed < 0 else seed


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the global generator (torch.manual_seed)."""
    global _generator, _initial_seed
    _initial_seed = int(seed)
    _generator = np.random.Generator(np.random.PCG64(_initial_seed))
    return _generator


seed = manual_seed


def initial_seed() -> int:
    return _initial_seed


def default_generator() -> np.random.Generator:
    return _generator


def get_rng_state() -> dict:
    """The generator's full state (a dict), for checkpoints that resume bit-exactly."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    _generator.bit_generator.state = state


class Generator:
    """An independent random stream (torch.Generator): PCG64 seeded with `manual_seed`, whose
    state `get_state` / `set_state` save and restore as a uint8 tensor. Pass it as `generator=` to
    the random functions. Its numpy generator is `.numpy_generator`; numpy's sampling methods
    (`random`, `standard_normal`, `integers`, `permutation`, ...) are reachable on the object too,
    so code written for a numpy Generator takes this one as well."""

    def __init__(self, device="cpu"):
        self.device = as_device(device)
        self._initial_seed = DEFAULT_SEED
        self.numpy_generator = np.random.Generator(np.random.PCG64(DEFAULT_SEED))

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from `seed`; returns self (as torch does)."""
        self._initial_seed = _check_seed(seed)
        self.numpy_generator = np.random.Generator(np.random.PCG64(self._initial_seed))
        return self

    def seed(self) -> int:
        """Seed from the operating system's entropy; returns the seed used."""
        return self.manual_seed(int(np.random.SeedSequence().entropy) & ((1 << 64) - 1))._initial_seed

    def initial_seed(self) -> int:
        return self._initial_seed

    def get_state(self):
        """The state as a 45-byte uint8 tensor: PCG64's 128-bit state and increment, its buffered
        32-bit half-word, and the initial seed (little-endian)."""
        from .tensor import Tensor  # at call time: tensor.py sits above this module in the import order

        s = self.numpy_generator.bit_generator.state
        raw = (s["state"]["state"].to_bytes(16, "little") + s["state"]["inc"].to_bytes(16, "little")
               + bytes([int(s["has_uint32"])]) + int(s["uinteger"]).to_bytes(4, "little")
               + self._initial_seed.to_bytes(8, "little"))
        return Tensor(np.frombuffer(raw, np.uint8).copy())

    def set_state(self, new_state) -> Generator:
        """Restore a state from `get_state`; returns self."""
        arr = np.asarray(new_state.detach().cpu().numpy() if hasattr(new_state, "detach") else new_state)
        if arr.dtype != np.uint8 or arr.shape != (_STATE_BYTES,):
            raise RuntimeError(f"Generator.set_state: expected a uint8 tensor of {_STATE_BYTES} bytes (from "
                               f"get_state), got dtype {arr.dtype} and shape {tuple(arr.shape)}")
        raw = arr.tobytes()
        state = {"bit_generator": "PCG64",
                 "state": {"state": int.from_bytes(raw[0:16], "little"),
                           "inc": int.from_bytes(raw[16:32], "little")},
                 "has_uint32": int(raw[32]), "uinteger": int.from_bytes(raw[33:37], "little")}
        if state["state"]["inc"] % 2 == 0:
            raise RuntimeError("Generator.set_state: not a PCG64 state (its increment must be odd)")
        self.numpy_generator.bit_generator.state = state
        self._initial_seed = int.from_bytes(raw[37:45], "little")
        return self

    def __getattr__(self, name):
        if name.startswith("_") or name == "numpy_generator":  # not set yet (during unpickling)
            raise AttributeError(name)
        return getattr(self.numpy_generator, name)

    def __repr__(self) -> str:
        return f"<tinyml.Generator device={self.device} initial_seed={self._initial_seed}>"


def numpy_generator(generator) -> np.random.Generator:
    """The numpy generator a random function draws from: the global one for None, a Generator's
    own stream, or a numpy Generator itself."""
    if generator is None:
        return _generator
    if isinstance(generator, Generator):
        return generator.numpy_generator
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator must be a tinyml.Generator, got {type(generator).__name__}")
