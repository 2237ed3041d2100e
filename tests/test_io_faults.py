"""Integrity of tinyml.save / tinyml.load: per-tensor checksums, every odd header a clean
ValueError naming the file and the tensor or field, and a fault sweep (flipped bytes, truncations)
where each load gives back exactly what was saved or raises ValueError."""
import json
import os
import struct

import ml_dtypes
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

import tinyml
from tinyml.io import read_safetensors, write_safetensors


def _state():
    rng = np.random.default_rng(0)
    return {"w": tinyml.tensor(rng.standard_normal((3, 4)).astype(np.float32)),
            "h": tinyml.tensor(rng.standard_normal(5), dtype=tinyml.bfloat16),
            "step": tinyml.tensor(np.array(2**40 + 3, dtype=np.int64)),
            "mask": tinyml.tensor(rng.random(6) > 0.5),
            "empty": tinyml.zeros(0, 2)}


def _split(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _write_raw(path, header, data: bytes):
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + data)


def _rewrite(path, edit, keep_checksums=True):
    """Apply edit(header) to the file's JSON header, keeping its data bytes."""
    header, data = _split(path)
    if not keep_checksums:
        header["__metadata__"].pop("tinyml.crc32")
    edit(header)
    _write_raw(path, header, data)


def _same(a: dict, b: dict) -> bool:
    def raw(t):
        return t.numpy().reshape(-1).view(np.uint8)

    return list(a) == list(b) and all(a[k].dtype is b[k].dtype and a[k].shape == b[k].shape
                                      and np.array_equal(raw(a[k]), raw(b[k])) for k in a)


def test_checksums_are_stored_and_other_readers_still_read_the_file(tmp_path):
    path = tmp_path / "m.safetensors"
    state = _state()
    tinyml.save(state, path)
    with safe_open(str(path), framework="numpy") as f:
        table = json.loads(f.metadata()["tinyml.crc32"])
    assert set(table) == set(state) | {"__metadata__"} and all(len(v) == 8 for v in table.values())
    for reader in (np_load_file, torch_load_file):
        back = reader(str(path))
        for k, v in state.items():
            got = back[k].float().numpy() if isinstance(back[k], torch.Tensor) else back[k].astype(np.float32)
            np.testing.assert_array_equal(got, v.numpy().astype(np.float32), err_msg=k)
    assert _same(tinyml.load(path), state)


def test_save_flushes_and_fsyncs_before_returning(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.fstat(fd).st_size)  # what the OS holds for the file when it is synced
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    tinyml.save(_state(), tmp_path / "m.safetensors")
    assert synced == [os.path.getsize(tmp_path / "m.safetensors")]


@pytest.mark.parametrize("damage", ["flip", "zero"])
def test_damaged_tensor_bytes_fail_the_checksum(tmp_path, damage):
    path = tmp_path / "m.safetensors"
    tinyml.save(_state(), path)
    header, data = _split(path)
    begin, end = header["w"]["data_offsets"]
    data = bytearray(data)
    if damage == "flip":
        data[begin + 5] ^= 0x10
    else:
        data[begin:end] = bytes(end - begin)
    _write_raw(path, header, bytes(data))
    with pytest.raises(ValueError, match=r"m\.safetensors: tensor 'w' fails its checksum "
                                         r"\(stored crc32 [0-9a-f]{8}"):
        tinyml.load(path)


def test_relabelled_dtype_or_shape(tmp_path):
    path = tmp_path / "m.safetensors"
    tinyml.save(_state(), path)
    _rewrite(path, lambda h: h["w"].update(dtype="I32"))  # same byte length: only the checksum sees it
    with pytest.raises(ValueError, match="tensor 'w' fails its checksum"):
        tinyml.load(path)
    tinyml.save(_state(), path)
    _rewrite(path, lambda h: h["w"].update(shape=[4, 3]))
    with pytest.raises(ValueError, match="tensor 'w' fails its checksum"):
        tinyml.load(path)
    for keep in (True, False):  # a byte length that no longer matches is an error, checksums or not
        tinyml.save(_state(), path)
        _rewrite(path, lambda h: h["w"].update(dtype="F16"), keep_checksums=keep)
        with pytest.raises(ValueError, match=r"tensor 'w': dtype F16 and shape \[3, 4\] make 24 bytes, "
                                             r"but its data_offsets \[\d+, \d+\] span 48"):
            tinyml.load(path)


def _offsets(name, begin, end):
    return lambda h: h[name].update(data_offsets=[begin, end])


ODD_HEADERS = [
    # (edit of the header dict, returning any bytes to append to the data; or raw header bytes), message
    (_offsets("a", -8, 0), r"tensor 'a' has data_offsets \[-8, 0\]; expected \[begin, end\] with 0 <= begin"),
    (_offsets("a", 8, 0), r"tensor 'a' has data_offsets \[8, 0\]"),
    (_offsets("b", 0, 16), r"tensors '(a|b)' and '(a|b)' overlap"),
    (lambda h: (_offsets("b", 24, 40)(h), b"\0" * 8)[1],  # 8 more data bytes, b placed after a gap
     r"bytes \[16, 24\) of the data belong to no tensor \(before 'b'\)"),
    (lambda h: (_offsets("a", 32, 48)(h), _offsets("b", 48, 64)(h)),
     r"tensor 'a' has data_offsets \[32, 48\) past the end of the data \(32 bytes"),
    (_offsets("b", 0.5, 16), r"tensor 'b' has data_offsets \[0.5, 16\]"),
    (lambda h: h["a"].update(dtype="F8_E4M3"), r"tensor 'a' has dtype 'F8_E4M3'; tinyml reads F64, F32"),
    (lambda h: h["a"].update(dtype=7), r"tensor 'a' has dtype 7"),
    (lambda h: h["a"].update(shape=[-2, -2]), r"tensor 'a' has shape \[-2, -2\]; a shape is a list of"),
    (lambda h: h["a"].update(shape=[True, 4]), r"tensor 'a' has shape \[True, 4\]"),
    (lambda h: h["a"].update(shape="4"), r"tensor 'a' has shape '4'"),
    (lambda h: h["a"].pop("shape"), r"tensor 'a': its header entry has no 'shape'"),
    (lambda h: h.update(a=[1, 2]), r"tensor 'a': its header entry is a list"),
    (lambda h: h.update(__metadata__={"format": 1}), r"__metadata__ must map strings to strings"),
    (lambda h: h.update(__metadata__=["x"]), r"__metadata__ must map strings to strings"),
    (b"[1, 2, 3]", r"the header is a JSON list, not an object"),
    (b"{not json", r"the header is not valid JSON"),
    (b"\xff\xfe{}", r"the header is not valid JSON"),
    (b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 16]}}', r"the header is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, r"the header is not valid JSON \(RecursionError"),
    (b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},'
     b' "a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}}', r"the header names 'a' twice"),
]


@pytest.mark.parametrize("edit,message", ODD_HEADERS)
def test_odd_headers_raise_value_errors_naming_file_and_field(tmp_path, edit, message):
    path = tmp_path / "odd.safetensors"
    np_save_file({"a": np.arange(4, dtype=np.float32), "b": np.ones(4, dtype=np.float32)}, str(path))
    header, data = _split(path)
    if isinstance(edit, bytes):
        header = edit
    else:
        more = edit(header)
        data += more if isinstance(more, bytes) else b""
    _write_raw(path, header, data)
    with pytest.raises(ValueError, match=r"odd\.safetensors: " + message):
        tinyml.load(path)


def test_header_length_and_size_errors(tmp_path):
    path = tmp_path / "odd.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match=r"odd\.safetensors: 2 bytes, too short for a safetensors file"):
        tinyml.load(path)
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(ValueError, match=r"odd\.safetensors: header length 1000 runs past the end of the "
                                         r"file \(10 bytes\)"):
        tinyml.load(path)
    np_save_file({"a": np.arange(4, dtype=np.float32)}, str(path))
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(ValueError, match=r"4 bytes after the last tensor's data"):
        tinyml.load(path)


def test_malformed_structure_in_a_file_without_checksums(tmp_path):
    path = tmp_path / "s.safetensors"
    np_save_file({"x": np.ones(2, dtype=np.float32)}, str(path),
                 metadata={"tinyml.structure": json.dumps({"__dict__": [["a", {"__tensor__": "y"}]]})})
    with pytest.raises(ValueError, match=r"s\.safetensors: the stored structure .* refers to tensor 'y'"):
        tinyml.load(path)


def test_save_refuses_reserved_names(tmp_path):
    with pytest.raises(ValueError, match="metadata key 'tinyml.crc32' is reserved"):
        tinyml.save({"w": tinyml.ones(2)}, tmp_path / "m.safetensors", metadata={"tinyml.crc32": "x"})
    with pytest.raises(ValueError, match="tensor names must be strings other than '__metadata__'"):
        tinyml.save({"__metadata__": tinyml.ones(2)}, tmp_path / "m.safetensors")


def test_one_codec_bf16_both_ways(tmp_path):
    # the codec (tinyml.io) writes bf16 that safetensors' numpy and torch loaders read, and reads
    # the bf16 files they write: the numpy loader handles bfloat16 through ml_dtypes
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(ml_dtypes.bfloat16)
    write_safetensors(tmp_path / "ours.safetensors", {"x": x})
    np.testing.assert_array_equal(np_load_file(str(tmp_path / "ours.safetensors"))["x"], x)
    assert torch_load_file(str(tmp_path / "ours.safetensors"))["x"].dtype == torch.bfloat16
    np_save_file({"x": x}, str(tmp_path / "np.safetensors"))
    torch_save_file({"x": torch.from_numpy(x.astype(np.float32)).bfloat16()},
                    str(tmp_path / "torch.safetensors"))
    for name in ("np", "torch"):
        arrays, meta = read_safetensors(tmp_path / f"{name}.safetensors")
        assert arrays["x"].dtype == ml_dtypes.bfloat16 and "tinyml.crc32" not in meta
        np.testing.assert_array_equal(arrays["x"], x)
        assert tinyml.load(tmp_path / f"{name}.safetensors")["x"].dtype is tinyml.bfloat16


def _sweep(path, same=None) -> int:
    """Flip bytes all over the file and truncate it at every length: each load returns exactly the
    original (`same(loaded)` holds) or raises ValueError; without checksums (same=None) a load may
    return other values, but never raises another exception type."""
    raw = path.read_bytes()
    bad = path.with_name("bad.safetensors")
    failures = 0
    variants = [raw[:n] for n in range(len(raw))]
    variants += [raw[:i] + bytes([raw[i] ^ m]) + raw[i + 1:] for i in range(len(raw)) for m in (0x01, 0x80)]
    for blob in variants:
        bad.write_bytes(blob)
        try:
            got = tinyml.load(bad)
        except ValueError as e:
            assert "bad.safetensors" in str(e)
            failures += 1
            continue
        if same is not None:
            assert same(got), f"silently different result from {blob!r}"
    return failures


def test_fault_sweep_with_checksums(tmp_path):
    path = tmp_path / "m.safetensors"
    state = _state()
    tinyml.save(state, path)
    failures = _sweep(path, lambda got: _same(got, state))
    assert failures >= len(path.read_bytes())  # every truncation at least
    nested = {"model": {"w": state["w"], "step": state["step"]}, "epoch": 3}
    tinyml.save(nested, path)
    _sweep(path, lambda got: set(got) == {"model", "epoch"} and got["epoch"] == 3
           and _same(got["model"], nested["model"]))


def test_fault_sweep_without_checksums(tmp_path):
    path = tmp_path / "t.safetensors"
    torch_save_file({"w": torch.randn(3, 4), "h": torch.randn(5, dtype=torch.bfloat16), "i": torch.arange(3)},
                    str(path))
    _sweep(path)
