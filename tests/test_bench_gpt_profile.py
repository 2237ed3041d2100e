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


def test_split_ab_times_each_kernel_on_one_and_two_threads(capsys):
    from helpers import load_script

    bench = load_script("bench/gpt_profile.py", "bench_gpt_profile")
    threads = tinyml.get_num_threads()
    try:
        bench.profile_tinyml(dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch=2), 2, 1, ab_repeats=2)
    finally:
        tinyml.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "best of 2 alternating runs" in out and "all kernels" in out
    assert "matmul.linear" in out and "norm.add_layer_norm_forward" in out
    assert tinyml.get_num_threads() == threads


def test_voluntary_switches_count_all_threads_and_the_main_one():
    from helpers import load_script

    bench = load_script("bench/gpt_profile.py", "bench_gpt_profile")
    total, main = bench._voluntary_switches()
    assert isinstance(total, int) and 0 <= main <= total
