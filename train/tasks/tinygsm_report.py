"""TinyGSM's report: the accuracy-against-N table, its plot, and a few held-out examples.

    print(format_table(greedy, curves))              # markdown, one row per N
    plot_curves(greedy, curves, "accuracy_vs_n.png")
"""
from __future__ import annotations

import numpy as np


def examples(test, greedy, greedy_correct, sampled, correct, scores, k: int = 3) -> list[dict]:
    """A few held-out problems where greedy was wrong: the question, greedy's code and the verifier's pick."""
    out = []
    for i in np.flatnonzero(~greedy_correct[:, 0])[:k]:
        pick = int(np.argmax(scores[i]))
        out.append({"question": test[i].question, "gold": test[i].answer, "greedy": greedy[i][0],
                    "verifier_pick": sampled[i][pick], "verifier_pick_right": bool(correct[i, pick])})
    return out


def format_table(greedy: float, curves: dict) -> str:
    ns = list(next(iter(curves.values())))
    head = "| N | " + " | ".join(["greedy", *curves]) + " |"
    rows = [head, "|" + "---|" * (len(curves) + 2)]
    for n in ns:
        rows.append(f"| {n} | {greedy:.1%} | " + " | ".join(f"{curves[m][n]:.1%}" for m in curves) + " |")
    return "\n".join(rows)


def plot_curves(greedy: float, curves: dict, path: str, title: str = "TinyGSM (toy): accuracy vs N",
                reference: dict | None = None) -> None:
    """The curves against N (log scale) and greedy as a line; `reference` ({N: accuracy}) adds the
    number rule's curve, dashed."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ns = list(next(iter(curves.values())))
    names = {"first": "one sample", "majority": "majority vote (executed answers)",
             "verifier": "verifier best-of-N", "oracle": "oracle (any right)"}
    for m, c in curves.items():
        ax.plot(ns, [100 * c[n] for n in ns], marker="o", label=names.get(m, m),
                linestyle=":" if m == "oracle" else "-")
    if reference:
        ax.plot(ns, [100 * reference[n] for n in ns], marker=".", color="grey", linestyle="--",
                label="number rule (reference, not a model)")
    ax.axhline(100 * greedy, color="k", linestyle="--", label="greedy")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("N (samples per problem)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_fresh(reading: dict, path: str, title: str = "TinyGSM (toy): accuracy vs N") -> None:
    """tinygsm_fresh.evaluate's reading against N = 1.. (log scale), each curve with a band of +-1
    standard error over problems, greedy as a line with its own band."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = {"first": "one sample", "majority": "majority vote", "verifier": "verifier best-of-N",
             "oracle": "oracle (any right)", "number rule": "number rule (reference, not a model)"}
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for m, by_n in reading["curves"].items():
        ns = sorted(int(n) for n in by_n)
        mean = np.array([by_n[str(n)]["mean_se"][0] for n in ns]) * 100
        se = np.array([by_n[str(n)]["mean_se"][1] for n in ns]) * 100
        style = ":" if m in ("oracle", "number rule") else "-"
        line, = ax.plot(ns, mean, label=names.get(m, m), linestyle=style)
        ax.fill_between(ns, mean - se, mean + se, color=line.get_color(), alpha=0.15)
    g, g_se = (100 * x for x in reading["greedy"])
    ax.axhline(g, color="k", linestyle="--", label="greedy")
    ax.axhspan(g - g_se, g + g_se, color="k", alpha=0.08)
    ax.axhline(g + 10, color="grey", linewidth=0.8, label="greedy + 10")
    ax.set_xscale("log", base=2)
    ticks = [n for n in (1, 2, 4, 8, 16, 32, 48) if n <= max(ns)]
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.set_xlabel("N (samples per problem)")
    ax.set_ylabel("accuracy (%), band: +-1 standard error")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_reading(reading: dict, ns=(1, 2, 4, 8, 16, 32, 48)) -> str:
    """tinygsm_fresh.evaluate's reading as markdown: one row per method, "mean +- standard error" at
    each N, and the verifier's paired margin over greedy."""
    ns = [n for n in ns if str(n) in reading["curves"]["verifier"]]
    g, g_se = reading["greedy"]
    rows = ["| method | " + " | ".join(f"N = {n}" for n in ns) + " |", "|---|" + "---|" * len(ns),
            "| greedy | " + " | ".join(f"{g:.1%} +- {g_se:.1%}" for _ in ns) + " |"]
    names = {"first": "one sample", "majority": "majority vote", "verifier": "**verifier best-of-N**",
             "oracle": "oracle (any right)", "number rule": "number rule (not a model)"}
    for m in ("first", "majority", "verifier", "oracle", "number rule"):
        cells = [reading["curves"][m][str(n)]["mean_se"] for n in ns]
        rows.append(f"| {names[m]} | " + " | ".join(f"{a:.1%} +- {s:.1%}" for a, s in cells) + " |")
    margins = [reading["curves"]["verifier"][str(n)]["over_greedy"] for n in ns]
    rows.append("| verifier - greedy (paired) | " + " | ".join(f"{a:+.1%} +- {s:.1%}" for a, s in margins)
                + " |")
    return "\n".join(rows)
