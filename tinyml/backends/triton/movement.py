"""Triton kernels: movement ops that reshape a tensor's view, for the cuda device.

    expand, view, permute   metadata only, no launch (written in _view.py, which creation.py's
                            copy_ needs too; registered here)
The views that select part of a tensor are in slicing.py; the movement ops that copy in
movement_copy.py.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_movement.py -k cuda
"""
from __future__ import annotations

from ._view import expand, permute, view

__all__ = ["expand", "permute", "view"]
