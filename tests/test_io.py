"""tinyml.save / tinyml.load: safetensors files that roundtrip and that torch's loader reads."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

import tinyml
from tinyml import nn
from tinyml.testing import assert_close

DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def _tensor(dtype, shape=(3, 4)):
    rng = np.random.default_rng(0)
    if dtype == "bool":
        return tinyml.tensor(rng.random(shape) > 0.5)
    return tinyml.tensor(rng.standard_normal(shape) * 10, dtype=getattr(tinyml, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_roundtrip_every_dtype_and_torch_reads_it(dtype, tmp_path):
    state = {"w": _tensor(dtype), "scalar": _tensor(dtype, ()), "empty": _tensor(dtype, (0, 2))}
    path = tmp_path / "m.safetensors"
    tinyml.save(state, path)
    back = tinyml.load(path)
    assert set(back) == set(state)
    for k, v in state.items():
        assert back[k].dtype is v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k].numpy().astype(np.float64), v.numpy().astype(np.float64))
    th = torch_load_file(str(path))
    assert str(th["w"].dtype) == f"torch.{dtype}" and tuple(th["scalar"].shape) == ()
    np.testing.assert_array_equal(th["w"].float().numpy(), state["w"].numpy().astype(np.float32))


def test_loads_a_file_written_by_torch_including_bf16(tmp_path):
    path = tmp_path / "t.safetensors"
    src = {"a": torch.randn(4, 5, dtype=torch.bfloat16), "b": torch.arange(6).reshape(2, 3)}
    torch_save_file(src, str(path))
    back = tinyml.load(path)
    assert back["a"].dtype is tinyml.bfloat16 and back["b"].dtype is tinyml.int64
    assert_close(back["a"], src["a"], rtol=0, atol=0)
    assert back["b"].tolist() == src["b"].tolist()
    back["a"] += 1  # memory is tinyml's own, writable (not the read-only mapped file)


def test_complex64_roundtrips_as_safetensors_c64_and_complex128_is_refused(tmp_path):
    z = tinyml.complex(tinyml.randn(3, 2), tinyml.randn(3, 2))
    path = tmp_path / "z.safetensors"
    tinyml.save({"z": z}, path)
    back = tinyml.load(path)
    assert back["z"].dtype is tinyml.complex64
    np.testing.assert_array_equal(back["z"].numpy(), z.numpy())
    np.testing.assert_array_equal(torch_load_file(str(path))["z"].numpy(), z.numpy())
    with pytest.raises(ValueError, match="complex128, which tinyml cannot store"):
        tinyml.save({"z": z.to(tinyml.complex128)}, tmp_path / "z128.safetensors")


def test_noncontiguous_tensors_are_saved_by_value(tmp_path):
    t = tinyml.tensor(np.arange(12.0, dtype=np.float32).reshape(3, 4)).T
    tinyml.save({"t": t}, tmp_path / "x.safetensors")
    assert_close(tinyml.load(tmp_path / "x.safetensors")["t"], t.numpy())


def test_model_state_dict_roundtrip_into_a_fresh_model(tmp_path):
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    model.register_buffer("counter", tinyml.tensor([7], dtype=tinyml.int64))
    tinyml.save(model.state_dict(), tmp_path / "model.safetensors")
    fresh = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    fresh.register_buffer("counter", tinyml.tensor([0], dtype=tinyml.int64))
    result = fresh.load_state_dict(tinyml.load(tmp_path / "model.safetensors"))
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    # torch reads the same file into an equivalent torch model
    th = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    sd = torch_load_file(str(tmp_path / "model.safetensors"))
    sd.pop("counter")
    th.load_state_dict(sd)


def test_optimizer_state_dict_roundtrip(tmp_path):
    model = nn.Linear(3, 2)
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    for _ in range(2):
        for p in model.parameters():
            p.grad = tinyml.ones_like(p)
        opt.step()
    tinyml.save(opt.state_dict(), tmp_path / "opt.safetensors")
    back = tinyml.load(tmp_path / "opt.safetensors")
    sd = opt.state_dict()
    assert sorted(back["state"]) == [0, 1]  # int keys survive
    assert back["param_groups"][0]["betas"] == (0.8, 0.9)  # tuples survive
    assert back["param_groups"][0]["params"] == [0, 1]
    for i in (0, 1):
        for k in ("step", "exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(back["state"][i][k].numpy(), sd["state"][i][k].numpy())
    opt2 = tinyml.optim.AdamW(nn.Linear(3, 2).parameters(), lr=1.0)
    opt2.load_state_dict(back)
    assert opt2.param_groups[0]["lr"] == 1e-2 and opt2.param_groups[0]["betas"] == (0.8, 0.9)
    # the tensors are visible to other safetensors readers under their dotted paths
    assert "state.0.exp_avg" in torch_load_file(str(tmp_path / "opt.safetensors"))


def test_nested_checkpoint_with_scheduler_and_metadata(tmp_path):
    model = nn.Linear(2, 2)
    opt = tinyml.optim.SGD(model.parameters(), lr=0.1)
    sched = tinyml.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4])
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": 3, "note": None, "tied": [model.weight, model.weight]}
    tinyml.save(ckpt, tmp_path / "ckpt.safetensors", metadata={"run": "spirals"})
    back = tinyml.load(tmp_path / "ckpt.safetensors")
    assert back["epoch"] == 3 and back["note"] is None
    assert back["tied"][0] is back["tied"][1]  # one tensor referenced twice is stored once
    sched2 = tinyml.optim.lr_scheduler.MultiStepLR(opt, milestones=[9])
    sched2.load_state_dict(back["scheduler"])
    assert sched2.milestones == sched.milestones
    assert sched2._get_closed_form_lr() == sched._get_closed_form_lr()
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ckpt.safetensors"), framework="numpy") as f:
        assert f.metadata()["run"] == "spirals"


def test_save_load_errors(tmp_path):
    with pytest.raises(TypeError, match="cannot store an object of type object at 'a.b'"):
        tinyml.save({"a": {"b": object()}}, tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match="no such file"):
        tinyml.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors: header length 7021991845529153390 runs past"):
        tinyml.load(tmp_path / "junk.safetensors")


def test_save_from_and_load_to_a_device(device, tmp_path):
    model = nn.Linear(3, 2).to(device)
    assert model.weight.device.type == device and isinstance(model.weight, nn.Parameter)
    tinyml.save(model.state_dict(), tmp_path / "m.safetensors")
    back = tinyml.load(tmp_path / "m.safetensors", map_location=device)
    assert back["weight"].device.type == device
    assert_close(back["weight"].cpu(), model.weight.detach().cpu(), rtol=0, atol=0)
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(back)  # copy_ brings the values over to the cpu model
    assert_close(fresh.weight, model.weight.detach().cpu(), rtol=0, atol=0)
