"""TinyGSM at toy scale (Liu et al. 2023), end to end: templated grade-school word problems with Python
solutions, a small GPT generator (BPE tokenizer) trained to write the solution function, N sampled
solutions per held-out problem executed in the sandbox (accuracy = executed answer equals gold), a
verifier (the generator's trunk plus a scalar head, trained with token-level BCE and the language-modelling
loss on the generator's own samples, labelled by execution, and on miscopied gold solutions) and best-of-N
selection. --split says how the held-out problems differ from the generator's training ones: numbers
(default: quantities 51..99 against 2..50), wording (one paraphrase of every template held out, its 3-5
others trained on, quantities 2..50 on both sides), instance (only the questions differ) or template. The
verifier's own problems (never a training or test question) come from both sides of the split, or the
training side with --verifier-from train. --generator-steps takes one step count, or several: then each
trains a generator and the one whose greedy accuracy on validation problems (test-side problems that are
not test questions) is nearest --target-greedy is kept, a rule fixed before any test result is seen.
--verifier-number-tokens N gives the verifier an input where every number below N is one token;
--verifier-init PATH starts its trunk from another generator checkpoint (e.g. a longer budget candidate);
--verifier-score lm scores a sample by its log-likelihood under the verifier's language-modelling head;
--verifier-checkpoints, --slot-negatives and --top-p shape the verifier's samples (docs/tinygsm.md).
--solution-styles all|N writes each problem's solution in one of several equivalent styles (a more diverse
generator; default 1: the template's own, the data of earlier runs).
Prints the table of accuracy against N for greedy decoding, one sample, majority vote over executed
answers, the verifier's pick and the oracle; the run folder holds tinygsm.json, accuracy_vs_n.png,
tokenizer.json, and generator/ and verifier/ training folders.
Model-written code runs only in the sandbox (separate, resource-limited processes).
Example: tinyml tinygsm --out runs/tinygsm (a few minutes on 2 cores); --quick checks the pipeline in
seconds (tiny models, not a measurement).
"""
from __future__ import annotations

import argparse

from .. import argtypes as at

NAME = "tinygsm"
HELP = "TinyGSM at toy scale: generator, sandboxed execution, verifier, best-of-N accuracy"


def _positive_ints(text: str, expected: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1, sorted and deduplicated; ArgumentTypeError saying `expected`."""
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return tuple(sorted(set(values)))


def n_list(text: str) -> tuple[int, ...]:
    return _positive_ints(text, "comma-separated positive integers like 1,2,4,8")


def steps_list(text: str) -> tuple[int, ...]:
    return _positive_ints(text, "a step count >= 1 or comma-separated ones like 100,200,400")


def solution_styles(text: str):
    """"all" or a count 1..MAX_STYLES (tinygsm_styles.style_count), as TinyGSMRun takes it."""
    from ..tasks.tinygsm_styles import style_count

    try:
        count = style_count(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return "all" if text == "all" else count


def verifier_start(text: str) -> str:
    if text in ("generator", "random"):
        return text
    try:
        at.existing_path(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected generator, random or a generator checkpoint (file or "
                                         f"run folder), got {text!r}, which does not exist") from None
    return text


def add_arguments(p) -> None:
    p.add_argument("--split", choices=("numbers", "wording", "instance", "template"), default="numbers",
                   help="how the held-out problems differ: numbers (51..99 vs 2..50, default), wording (one "
                        "paraphrase of each template), instance (only the questions) or template")
    p.add_argument("--train-problems", type=at.positive_int, default=3000,
                   help="problems the generator trains on (default 3000)")
    p.add_argument("--test-problems", type=at.positive_int, default=200,
                   help="held-out problems (default 200)")
    p.add_argument("--verifier-problems", type=at.positive_int, default=1200,
                   help="problems whose generator samples train the verifier (default 1200)")
    p.add_argument("--verifier-samples", type=at.bounded_int(2, 256), default=8,
                   help="generator samples per verifier problem (default 8)")
    p.add_argument("--hard-negatives", type=at.nonnegative_int, default=4,
                   help="per verifier problem, copies of its gold solution with a number miscopied, labelled "
                        "by execution (default 4; 0: the generator's samples only)")
    p.add_argument("--generator-steps", "--steps", dest="steps", type=steps_list, default=(800,),
                   help="generator steps (default 800); several, comma-separated: train each and keep the "
                        "one whose validation greedy accuracy is nearest --target-greedy")
    p.add_argument("--target-greedy", type=at.bounded_float(0.0, 1.0, open_lo=True), default=0.675,
                   help="with several --generator-steps: the validation greedy accuracy to be nearest "
                        "(default 0.675)")
    p.add_argument("--validation-problems", type=at.positive_int, default=200,
                   help="test-side problems (not test questions) for the generator's validation "
                        "(default 200)")
    p.add_argument("--verifier-steps", type=at.positive_int, default=1500,
                   help="verifier steps (default 1500)")
    p.add_argument("--verifier-from", "--verifier-numbers", dest="verifier_from", choices=("all", "train"),
                   default="all", help="the verifier's problems: all = both sides of the split (default; "
                                       "under --split numbers 2..99), train = the training side only (2..50)")
    p.add_argument("--contrast-problems", type=at.nonnegative_int, default=3000,
                   help="further verifier problems, each as its gold solution plus --hard-negatives "
                        "miscopied copies, labelled by execution (default 3000; 0: none)")
    p.add_argument("--verifier-lm", type=at.nonnegative_float, default=1.0,
                   help="weight of the verifier's language-modelling loss on right solutions (default 1.0)")
    p.add_argument("--verifier-score", choices=("last", "min", "mean", "lm"), default="min",
                   help="a sample's score from the per-token scores: the last token's, the min (default) or "
                        "the mean over the solution's tokens; lm: the log-likelihood of the solution under "
                        "the verifier's language-modelling head")
    p.add_argument("--verifier-number-tokens", type=at.nonnegative_int, default=0,
                   help="> 0: the verifier reads every number below this as one token of its own, so "
                        "equality with a question's number is one attention lookup (default 0: the "
                        "generator's digit tokens)")
    p.add_argument("--verifier-checkpoints", type=steps_list, default=(),
                   help="budget candidates (step counts of --generator-steps) whose samples join the "
                        "verifier's: its problems are shared out among them and the chosen generator, "
                        "so it sees the errors of several training stages (default: the chosen one only)")
    p.add_argument("--slot-negatives", type=at.nonnegative_int, default=0,
                   help="per verifier and contrast problem, copies of its gold solution with a number in "
                        "the wrong slot (two swapped, one used twice, a wrong percentage), labelled by "
                        "execution (default 0)")
    p.add_argument("--pick-runnable", action="store_true",
                   help="the verifier picks among the samples whose program ran (an answer, as majority "
                        "vote counts only those); default: among all")
    p.add_argument("--top-p", type=at.bounded_float(0.0, 1.0, open_lo=True), default=1.0,
                   help="nucleus sampling for the held-out and the verifier's samples (default 1.0: off)")
    p.add_argument("--solution-styles", type=solution_styles, default=1,
                   help="every problem's solution in one of its template's first N equivalent styles, drawn "
                        "at random (all: every style: one expression, named inputs first, another order; "
                        "default 1: the template's own solution, as in earlier runs)")
    p.add_argument("--batch-size", type=at.positive_int, default=32, help="rows per step (default 32)")
    p.add_argument("--lr", type=at.positive_float, default=2e-3,
                   help="generator peak learning rate (default 2e-3)")
    p.add_argument("--layers", type=at.positive_int, default=3, help="GPT layers (default 3)")
    p.add_argument("--heads", type=at.positive_int, default=4, help="attention heads (default 4)")
    p.add_argument("--width", type=at.positive_int, default=96, help="embedding width (default 96)")
    p.add_argument("--samples", type=at.positive_int, default=48,
                   help="sampled solutions per held-out problem (default 48; the largest N)")
    p.add_argument("--ns", type=n_list, default=(1, 2, 4, 8, 16, 32, 48),
                   help="the N of best-of-N, comma-separated (default 1,2,4,8,16,32,48)")
    p.add_argument("--temperature", type=at.positive_float, default=0.8,
                   help="sampling temperature on held-out problems (default 0.8)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny run that checks the pipeline in seconds (overrides the sizes above)")
    p.add_argument("--verifier-lr", type=at.positive_float, default=1e-3,
                   help="verifier peak learning rate (default 1e-3)")
    p.add_argument("--verifier-temperature", type=at.positive_float, default=1.0,
                   help="sampling temperature of the verifier's training samples (default 1.0)")
    p.add_argument("--verifier-init", type=verifier_start, default="generator",
                   help="the verifier's trunk starts from the generator's weights (default), fresh ones "
                        "(random), or another generator checkpoint of the same shape and tokenizer (a file "
                        "or run folder, e.g. OUT/generator_800steps)")
    p.add_argument("--resume", action="store_true",
                   help="continue the generator and verifier from their checkpoints in --out (a finished "
                        "stage is only loaded); the sizes and rates must be the run's")
    p.add_argument("--seed", type=at.seed, default=0)
    p.add_argument("--device", type=at.device_name,
                   help="cpu, cuda, cuda:N, or auto (default: the best present)")
    p.add_argument("--out", type=at.folder_to_create, default="tinyml-tinygsm", help="run folder to create")


QUICK = dict(train_problems=200, test_problems=8, verifier_problems=16, verifier_samples=4, n_layer=1,
             n_head=2, n_embd=32, steps=20, verifier_steps=10, samples=4, ns=(1, 2, 4), repeats=2,
             eval_interval=10, contrast_problems=12, validation_problems=8)


def run(args) -> int:
    from ..cli import _best_device  # the cli's own device choice, as train makes it
    from ..progress import require_matplotlib
    from ..runs import UsageError
    from ..tasks.tinygsm_run import TinyGSMRun, run_tinygsm

    if args.width % args.heads:
        raise UsageError(f"--width {args.width} must be divisible by --heads {args.heads}")
    if not args.quick and max(args.ns) > args.samples:
        raise UsageError(f"--ns {','.join(map(str, args.ns))}: every N must be at most "
                         f"--samples {args.samples}")
    device = _best_device(args.device)
    require_matplotlib()
    spec = TinyGSMRun(train_problems=args.train_problems, test_problems=args.test_problems,
                      verifier_problems=args.verifier_problems, verifier_samples=args.verifier_samples,
                      steps=args.steps[-1] if len(args.steps) == 1 else 800,
                      steps_candidates=args.steps if len(args.steps) > 1 else (),
                      target_greedy=args.target_greedy, validation_problems=args.validation_problems,
                      split=args.split, verifier_steps=args.verifier_steps, batch_size=args.batch_size,
                      lr=args.lr, n_layer=args.layers, n_head=args.heads, n_embd=args.width,
                      samples=args.samples, ns=args.ns, temperature=args.temperature, seed=args.seed,
                      out=args.out, verifier_lr=args.verifier_lr,
                      verifier_temperature=args.verifier_temperature, resume=args.resume,
                      hard_negatives=args.hard_negatives, verifier_init=args.verifier_init,
                      verifier_from=args.verifier_from, contrast_problems=args.contrast_problems,
                      verifier_lm=args.verifier_lm, verifier_score=args.verifier_score,
                      verifier_number_tokens=args.verifier_number_tokens,
                      verifier_checkpoints=args.verifier_checkpoints, slot_negatives=args.slot_negatives,
                      top_p=args.top_p, pick_runnable=args.pick_runnable,
                      solution_styles=args.solution_styles)
    if args.quick:
        spec = TinyGSMRun(**{**spec.__dict__, **QUICK, "progress": False})
    gen_steps = "/".join(map(str, spec.steps_candidates)) if spec.steps_candidates else spec.steps
    print(f"tinyml tinygsm: split by {spec.split}, {spec.train_problems} training problems, GPT "
          f"{spec.n_layer}x{spec.n_embd}, {gen_steps} generator + {spec.verifier_steps} verifier steps, "
          f"N up to {spec.samples} on {device}"
          f"{'' if spec.solution_styles == 1 else f', solutions in {spec.solution_styles} styles'}"
          f"{' (quick: a pipeline check, not a measurement)' if args.quick else ''} -> {args.out}")
    r = run_tinygsm(spec, device=device)
    v16 = r["curves"]["verifier"].get("16")
    print(f"held-out accuracy: greedy {r['greedy']:.1%}"
          f"{'' if v16 is None else f', verifier best-of-16 {v16:.1%}'}; {r['wall_seconds']:.1f}s in all")
    print(f"  results: {args.out}/tinygsm.json\n  plot:    {args.out}/accuracy_vs_n.png")
    return 0
