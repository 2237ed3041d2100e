"""bench/gpt_profile.py: the per-kernel profile of a compiled GPT step runs and names the kernels."""
import tinyml


def test_profile_of_a_tiny_gpt_step(capsys):
    from helpers import load_script

    bench = load_script("bench/gpt_profile.py", "bench_gpt_profile")
    threads = tinyml.get_num_threads()
    try:
        bench.profile_tinyml(dict(n_layer=2, n_head=2, n_embd=16, block_size=8, batch=2), 1, 2)
    finally:
        tinyml.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "replayed steps" in out and "all kernels and segments" in out
    for name in ("matmul.linear", "norm.add_layer_norm_forward", "norm.add_layer_norm_backward",
                 "segment:Adam.step"):
        assert name in out, out
    assert "view" not in out  # the replay skips the view calls whose results nobody keeps
