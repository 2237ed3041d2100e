"""One random generator for tinyml, reproducible with `manual_seed`.

Random numbers are drawn on the host with numpy's PCG64 and copied to the target device, so a
seed gives the same values on cpu and cuda.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.Generator(np.random.PCG64(0))
_initial_seed = 0


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
