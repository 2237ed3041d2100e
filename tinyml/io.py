"""tinyml.save / tinyml.load: checkpoints as safetensors files, and the one safetensors codec.

A flat dict of name -> Tensor (a model's state_dict) is written as a plain safetensors file,
readable by `safetensors.torch.load_file`, Hugging Face and any other framework, every dtype
included (bfloat16 through ml_dtypes):

    tinyml.save(model.state_dict(), "model.safetensors")
    model.load_state_dict(tinyml.load("model.safetensors"))

Anything else built from dicts, lists, tuples, tensors, numbers, strings, bools and None (an
optimizer's or a scheduler's state_dict, a training checkpoint bundling several) is stored in
the same format: each tensor under its dotted path ("optimizer.state.0.exp_avg"), and the
structure as JSON in the file's metadata under "tinyml.structure", where a tensor is
{"__tensor__": key}, a tuple {"__tuple__": [...]}, a dict {"__dict__": [[key, value], ...]}
(keys may be ints, as in optimizer state) and a Counter {"__counter__": [[key, count], ...]}.
Other tools see the tensors; tinyml.load rebuilds the object.

The format: 8 bytes little-endian header length N, N bytes of JSON
{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the tensors' little-endian bytes, back to back, covering the data section exactly.
Integrity: the metadata entry "tinyml.crc32" holds a JSON table {name: crc32 of (dtype, shape,
bytes)} plus {"__metadata__": crc32 of the other metadata entries}; `load` checks every entry and
names the file and the tensor that fails. Files without the table (written by safetensors, torch,
transformers) load unchecked. crc32 rather than sha256: it detects any burst of up to 32 flipped
bits, and costs 12-16 ms per 50 MB against sha256's 29 ms (zlib 1.2.13 / OpenSSL, one core);
it guards against corruption, not against an adversary. `save` flushes and fsyncs the file before
returning, so a temp-then-rename by the caller never publishes a file whose bytes are not on disk.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from collections import Counter, OrderedDict

import numpy as np

from . import dtypes as _dt
from .tensor import Tensor

__all__ = ["load", "save"]

_STRUCTURE_KEY = "tinyml.structure"
_CHECKSUM_KEY = "tinyml.crc32"
_MAX_HEADER = 100_000_000  # the safetensors library's own limit on the header length
# safetensors dtype codes <-> tinyml dtypes (U16/U32/U64 and the float8 types have no tinyml dtype)
_CODES = {"F64": _dt.float64, "F32": _dt.float32, "F16": _dt.float16, "BF16": _dt.bfloat16, "I64": _dt.int64,
          "I32": _dt.int32, "I16": _dt.int16, "I8": _dt.int8, "U8": _dt.uint8, "BOOL": _dt.bool_,
          "C64": _dt.complex64}  # the format has no complex128


# ---- the codec: numpy arrays <-> a safetensors file --------------------------------------------
def _little(dt: np.dtype) -> np.dtype:
    """The little-endian form of dt; on little-endian hosts the canonical dtype object itself,
    since native code may compare dtypes by identity ('<f4' built by newbyteorder is another object)."""
    return dt if sys.byteorder == "little" or dt.itemsize == 1 else dt.newbyteorder("<")


def _crc(code: str, shape, arr: np.ndarray) -> str:
    """crc32 of the tensor's header description and its bytes: a relabelled dtype or shape fails too."""
    head = zlib.crc32(f"{code}{list(shape)}".encode())
    return f"{zlib.crc32(arr.reshape(-1).view(np.uint8), head):08x}"


def _metadata_crc(meta: dict) -> str:
    rest = {k: v for k, v in meta.items() if k != _CHECKSUM_KEY}
    return f"{zlib.crc32(json.dumps(rest, sort_keys=True).encode()):08x}"


def write_safetensors(path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write numpy arrays to the safetensors file `path` (header in the dict's order, data sorted
    by alignment as the safetensors library does), with the crc32 table in the metadata; the file
    is flushed and fsynced before this returns."""
    path = os.fspath(path)
    codes = {d.name: c for c, d in _CODES.items()}
    header: dict = {}
    crcs: dict = {}
    prepared = []
    for name, a in arrays.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"{path}: tensor names must be strings other than '__metadata__', got {name!r}")
        a = np.asarray(a)
        try:
            tm = _dt._FROM_NP[a.dtype if a.dtype.isnative else a.dtype.newbyteorder("=")]
            codes[tm.name]
        except KeyError:
            raise ValueError(f"{path}: tensor {name!r} has dtype {a.dtype}, which tinyml cannot store; "
                             f"supported: {', '.join(d.name for d in _CODES.values())}") from None
        a = a.astype(_little(tm.np), copy=False)
        if not a.flags["C_CONTIGUOUS"]:
            a = a.copy(order="C")  # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
        crcs[name] = _crc(codes[tm.name], a.shape, a)
        header[name] = {"dtype": codes[tm.name], "shape": list(a.shape)}
        prepared.append((name, a))
    prepared.sort(key=lambda na: -na[1].dtype.itemsize)  # stable: ties keep the dict's order
    offset = 0
    for name, a in prepared:
        header[name]["data_offsets"] = [offset, offset + a.nbytes]
        offset += a.nbytes
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    crcs["__metadata__"] = _metadata_crc(meta)
    meta[_CHECKSUM_KEY] = json.dumps(crcs, separators=(",", ":"))
    hb = json.dumps({"__metadata__": meta, **header}, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)  # the format pads the header to 8-byte alignment
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, a in prepared:
            f.write(a.reshape(-1).view(np.uint8))
        f.flush()
        os.fsync(f.fileno())  # bytes on disk before a caller's rename makes the file visible


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(path: str):
    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:  # json.loads would keep the last one silently
                raise _DuplicateKey(f"{path}: the header names {k!r} twice")
            seen.add(k)
        return dict(pairs)
    return hook


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_entry(path: str, name: str, info) -> tuple[str, tuple, int, int]:
    """(dtype code, shape, begin, end) of one header entry, every field checked."""
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict):
        raise ValueError(f"{where}: its header entry is a {type(info).__name__}, not an object with dtype, "
                         "shape and data_offsets")
    for field in ("dtype", "shape", "data_offsets"):
        if field not in info:
            raise ValueError(f"{where}: its header entry has no {field!r}")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(code, str) or code not in _CODES:
        raise ValueError(f"{where} has dtype {code!r}; tinyml reads {', '.join(_CODES)}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise ValueError(f"{where} has shape {shape!r}; a shape is a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise ValueError(f"{where} has data_offsets {offsets!r}; "
                         "expected [begin, end] with 0 <= begin <= end")
    nbytes = int(np.prod(shape, dtype=object)) * _CODES[code].itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise ValueError(f"{where}: dtype {code} and shape {shape} make {nbytes} bytes, but its data_offsets "
                         f"{offsets} span {offsets[1] - offsets[0]}")
    return code, tuple(shape), offsets[0], offsets[1]


def _read_header(f, path: str) -> tuple[dict, dict, int]:
    """The validated entries {name: (dtype code, shape, begin, end)} in header order, the metadata,
    and the offset of the data section."""
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise ValueError(f"{path}: {size} bytes, too short for a safetensors file "
                         "(8-byte header length first)")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > size - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({size} bytes)")
    if n > _MAX_HEADER:
        raise ValueError(f"{path}: header length {n} is over the format's limit of {_MAX_HEADER} bytes")
    try:
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates(path),
                            parse_constant=_reject_constant)
    except _DuplicateKey:
        raise
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError; absurd nesting
        raise ValueError(f"{path}: the header is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header is a JSON {type(header).__name__}, not an object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings, got {meta!r:.200}")
    entries = {name: _parse_entry(path, name, info) for name, info in header.items()}
    body = size - 8 - n
    prev_name, prev_end = None, 0
    # the data section is the tensors back to back: no overlap, no gap, nothing after the last
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda e: (e[1][2], e[1][3])):
        if end > body:
            raise ValueError(f"{path}: tensor {name!r} has data_offsets [{begin}, {end}) past the end of the "
                             f"data ({body} bytes; the file is truncated or its header is wrong)")
        if begin < prev_end:
            raise ValueError(f"{path}: tensors {prev_name!r} and {name!r} overlap (data ending at "
                             f"{prev_end}, data_offsets [{begin}, {end}))")
        if begin > prev_end:
            raise ValueError(f"{path}: bytes [{prev_end}, {begin}) of the data belong to no tensor "
                             f"(before {name!r})")
        prev_name, prev_end = name, end
    if prev_end != body:
        raise ValueError(f"{path}: {body - prev_end} bytes after the last tensor's data (ending at "
                         f"{prev_end}); the header does not describe this file")
    return entries, meta, 8 + n


def _verify(path: str, arrays: dict, entries: dict, meta: dict) -> None:
    try:
        table = json.loads(meta[_CHECKSUM_KEY])
    except ValueError:
        table = None
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"{path}: the checksum table (metadata {_CHECKSUM_KEY!r}) is malformed: "
                         "the header is corrupt")
    if table.get("__metadata__") != _metadata_crc(meta):
        raise ValueError(f"{path}: the header metadata fails its checksum: the header is corrupt")
    for name, arr in arrays.items():
        if name not in table:
            raise ValueError(f"{path}: tensor {name!r} has no entry in the checksum table: "
                             "the header is corrupt")
        got = _crc(entries[name][0], arr.shape, arr)
        if got != table[name]:
            raise ValueError(f"{path}: tensor {name!r} fails its checksum (stored crc32 {table[name]}, "
                             f"computed {got}): its bytes, dtype or shape changed since it was saved")
    lost = sorted(set(table) - set(arrays) - {"__metadata__"})
    if lost:
        raise ValueError(f"{path}: the checksum table lists tensors the file does not hold: {lost[:5]}")


def read_safetensors(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors of a safetensors file as numpy arrays in header order (memory of their own,
    writable), and its metadata. Every header field is checked, and the crc32 table when the file
    has one; anything wrong raises ValueError naming the file and the tensor or field."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: '{path}'")
    with open(path, "rb") as f:
        entries, meta, start = _read_header(f, path)
        arrays = {}
        for name, (code, shape, begin, end) in entries.items():
            arr = np.empty(shape, dtype=_little(_CODES[code].np))
            f.seek(start + begin)
            if f.readinto(arr.reshape(-1).view(np.uint8)) != end - begin:
                raise ValueError(f"{path}: tensor {name!r}: the file ended while reading its data")
            arrays[name] = arr
    if _CHECKSUM_KEY in meta:
        _verify(path, arrays, entries, meta)
    return arrays, meta


# ---- nested structures -------------------------------------------------------------------------
def _host(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _is_flat_state_dict(obj) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _encode(obj, path: str, tensors: dict, seen: dict):
    if isinstance(obj, Tensor):
        key = seen.get(id(obj))
        if key is None:  # a tensor referenced twice is stored once
            key = path or "tensor"
            while key in tensors:
                key += "_"
            tensors[key] = _host(obj)
            seen[id(obj)] = key
        return {"__tensor__": key}
    if isinstance(obj, Counter):
        return {"__counter__": [[_key(k, path), v] for k, v in obj.items()]}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k, path), _encode(v, _join(path, k), tensors, seen)]
                             for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, _join(path, i), tensors, seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, _join(path, i), tensors, seen) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"tinyml.save: cannot store an object of type {type(obj).__name__} at "
                    f"'{path or '<root>'}'; supported: Tensor, dict, list, tuple, int, float, str, bool, "
                    "None")


def _key(k, path: str):
    if k is None or isinstance(k, (bool, int, float, str)):
        return k
    raise TypeError(f"tinyml.save: dict keys must be str, int, float, bool or None, got "
                    f"{type(k).__name__} at '{path or '<root>'}'")


def _join(path: str, k) -> str:
    return f"{path}.{k}" if path else str(k)


def _decode(obj, tensors: dict):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            if obj["__tensor__"] not in tensors:
                raise ValueError(f"it refers to tensor {obj['__tensor__']!r}, which the file does not hold")
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__counter__" in obj:
            return Counter({k: v for k, v in obj["__counter__"]})
        if "__dict__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
        raise ValueError(f"unknown entry {sorted(obj)}")
    return obj


def save(obj, f, metadata: dict[str, str] | None = None) -> None:
    """Write `obj` (a state_dict, or a nested structure of them) to the safetensors file `f`,
    with a crc32 per tensor; flushed and fsynced before returning. `metadata` adds string
    entries to the file header."""
    meta = {"format": "pt"}  # what safetensors.torch writes: other loaders expect torch-layout tensors
    for k, v in (metadata or {}).items():
        if str(k) in (_STRUCTURE_KEY, _CHECKSUM_KEY):
            raise ValueError(f"tinyml.save: metadata key {str(k)!r} is reserved for tinyml's own use")
        meta[str(k)] = str(v)
    if _is_flat_state_dict(obj):
        # tied weights (one tensor under two names) are written under each name, as torch does
        tensors = {k: _host(v) for k, v in obj.items()}
    else:
        tensors = {}
        meta[_STRUCTURE_KEY] = json.dumps(_encode(obj, "", tensors, {}))
    write_safetensors(f, tensors, metadata=meta)


def load(f, map_location=None, *, device=None, weights_only: bool = True) -> object:
    """Read a file written by `save` (or any safetensors file: a dict of name -> Tensor in file
    order). Tensors are copied into memory owned by tinyml, on `device` (or map_location) or cpu.
    A corrupt file (a checksum that fails, a malformed or inconsistent header, a truncated file)
    raises ValueError naming the file and the tensor or field."""
    path = os.fspath(f)
    if not os.path.exists(path):
        raise FileNotFoundError(f"tinyml.load: no such file: '{path}'")
    arrays, meta = read_safetensors(path)
    dev = device if device is not None else map_location
    tensors = OrderedDict((k, _to_tensor(a, dev)) for k, a in arrays.items())
    structure = meta.get(_STRUCTURE_KEY)
    if structure is None:
        return tensors
    try:
        return _decode(json.loads(structure), tensors)
    except (ValueError, TypeError, KeyError, RecursionError) as e:  # unchecked files can hold anything
        raise ValueError(f"{path}: the stored structure (metadata {_STRUCTURE_KEY!r}) is malformed: "
                         f"{e}") from None


def _to_tensor(arr: np.ndarray, dev) -> Tensor:
    t = Tensor._make(arr)  # read_safetensors gives arrays of their own: no copy needed
    return t if dev is None else t.to(dev)
