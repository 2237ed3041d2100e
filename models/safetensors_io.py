"""Reading and writing .safetensors files as numpy arrays, bfloat16 included (via ml_dtypes).

The format: 8 bytes little-endian header length N, N bytes of JSON
{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
then the raw little-endian tensor bytes. The `safetensors` package's numpy loader rejects
bfloat16, which Hugging Face checkpoints often use, so the few lines are written out here.
"""
from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np


def _dtypes() -> dict:
    import ml_dtypes

    return {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
            "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _little(dt: np.dtype) -> np.dtype:
    """The little-endian form of dt; on little-endian hosts the canonical dtype object itself,
    since native code may compare dtypes by identity ('<f4' built by newbyteorder is another object)."""
    return dt if sys.byteorder == "little" or dt.itemsize == 1 else dt.newbyteorder("<")


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """All tensors of a .safetensors file as numpy arrays (copies, independent of the file)."""
    table = _dtypes()
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + n])
    except json.JSONDecodeError:
        raise ValueError(f"{path}: not a safetensors file (its header is not JSON)") from None
    body = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in table:
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, not one of {sorted(table)}")
        begin, end = info["data_offsets"]
        dt = _little(np.dtype(table[info["dtype"]]))
        shape = tuple(info["shape"])
        expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if end - begin != expected or end > len(body):
            raise ValueError(f"{path}: tensor {name!r} of shape {shape} {info['dtype']} needs {expected} bytes, "
                             f"the header gives [{begin}, {end}) of {len(body)}")
        out[name] = np.frombuffer(body[begin:end], dtype=dt).reshape(shape).copy()
    return out


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write numpy arrays as a .safetensors file (atomically: a temp file, then rename)."""
    names = {np.dtype(v): k for k, v in _dtypes().items()}
    header: dict = {"__metadata__": dict(metadata or {})}
    offset, blobs = 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype not in names:
            raise ValueError(f"write_safetensors: tensor {name!r} has dtype {a.dtype}, not supported")
        b = a.astype(_little(a.dtype), copy=False).tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)  # the format pads the header to 8-byte alignment
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
