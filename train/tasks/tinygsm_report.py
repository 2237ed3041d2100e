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
