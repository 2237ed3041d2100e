"""bench/gpt_spread.py: the per-step summary of a worker's result (times in ms, events per step)."""


def test_summary_drops_the_warm_up_steps_and_takes_medians():
    from helpers import load_script

    bench = load_script("bench/gpt_spread.py", "bench_gpt_spread")
    result = {"times": [9.0, 9.0, 0.010, 0.030, 0.020, 0.040],
              "cpu_times": [9.0, 9.0, 0.02, 0.02, 0.03, 0.03],
              "events": [[99, 99, 99]] * 2 + [[0, 110, 5], [2, 110, 7], [0, 112, 9], [0, 108, 1]]}
    s = bench.summary(result)
    assert (s["min"], s["max"]) == (10.0, 40.0)
    assert abs(s["median"] - 25.0) < 1e-9 and abs(s["cpu"] - 25.0) < 1e-9
    assert s["p90"] == 40.0
    assert (s["faults"], s["vcsw"], s["ivcsw"]) == (0, 110, 6)
    assert bench.line("tinyml", s).split()[:3] == ["tinyml", "10.0", "25.0"]


def test_the_gpt_cpu_workers_record_events_per_step():
    from helpers import load_script

    bench = load_script("bench/gpt_cpu.py", "bench_gpt_cpu")
    faults, voluntary, involuntary = bench._events()
    assert faults > 0 and voluntary >= 0 and involuntary >= 0
