"""From two recordings of one function (tinyml/_capture_record.py) to a replay: straight-line
Python that calls the recorded kernels in order (tinyml.compile, tinyml/compile.py).

`build_program(first, second)` checks that the two recordings agree event for event (same
kernel functions, same numbers, same sources for every array) and decides what each external
array is: persistent (the same memory in both calls: parameters, optimizer and running-stat
buffers, cached masks) is passed as that array; constant (other memory, equal values, never
written by a kernel) is passed as a copy; anything else raises `Unsupported` with the reason.
Then it writes the replay as Python source, one line per event:

    s12 = k40(s11, p3, c7)            # kernel 40: a new array -> local s12
    s13, s14 = k41(s12, i0)           # two outputs
    if r is NotImplemented: ...       # only after a kernel that could decline an input
    L2._grad = _make(s14, d0)         # a leaf's new .grad
    g5(o5, *a5, **w5)                 # a segment (optimizer step, zero_grad), run eagerly
    del s12                           # after its last use, so memory is freed as in eager mode

Locals are the fastest variables CPython has, and the `del`s keep the peak memory of eager mode.
`Program.source` is the text, for reading (`compiled.code()`).
"""
from __future__ import annotations

import math

import numpy as np

from ._capture_record import Unsupported, make_view
from .tensor import Tensor

_DECLINING = ("cpu", "user")  # backends whose kernels may return NotImplemented for an input
# numpy's reference view kernels (backends/reference/movement.py): they write nothing and return a
# view of their input. When no slot holds their result (every reader rebuilds the view with `_v`), the
# replay has nothing to call them for: a baby GPT step had 109 such calls, about 0.5-0.9 ms of Python.
_PURE_VIEWS = frozenset(("view", "expand", "permute"))
_VIEWS_MODULE = "tinyml.backends.reference.movement"


def _same_value(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, np.generic):
        return a.tobytes() == b.tobytes()
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # an object without a truthful ==: only identity counts
        return False


def _describe_value(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class _Builder:
    def __init__(self, first, second):
        self.first, self.second = first, second
        self.namespace: dict = {"_make": Tensor._make, "_v": make_view}
        self.lines: list[str] = []
        self.n_names = 0
        self.uses: dict[int, int] = {}  # slot -> index of the event that reads it last
        self.guards: list = []  # (leaf tensor, its array): checked before every replay
        self.n_kernels = 0

    def name(self, prefix: str, value) -> str:
        key = f"{prefix}{self.n_names}"
        self.n_names += 1
        self.namespace[key] = value
        return key

    # -- matching the two recordings --------------------------------------------------------------
    def arg(self, d1, d2, where: str, event: int) -> str:
        """The source text of one argument, after checking that both recordings agree on it."""
        kind = d2[0]
        if d1[0] != kind:
            raise Unsupported(f"{where}: the argument comes from different places in two calls "
                              f"({d1[0]} vs {kind})")
        if kind == "in" or kind == "slot":
            if d1[1] != d2[1]:
                raise Unsupported(f"{where}: the argument is a different array in two calls")
            if kind == "slot":
                self.uses[d2[1]] = event
                return f"s{d2[1]}"
            return f"i{d2[1]}"
        if kind == "view":
            if d1[2:] != d2[2:]:
                raise Unsupported(f"{where}: a view with different offsets or strides in two calls")
            src = self.arg(d1[1], d2[1], where, event)
            shape, strides, dtype = (self.name("c", v) for v in d2[3:])
            return f"_v({src}, {d2[2]}, {shape}, {strides}, {dtype})"
        if kind == "list":
            if d1[1] is not d2[1] or len(d1[2]) != len(d2[2]):
                raise Unsupported(f"{where}: a list of arrays of different lengths in two calls")
            items = ", ".join(self.arg(a, b, where, event) for a, b in zip(d1[2], d2[2]))
            return f"[{items}]" if d2[1] is list else f"({items}{',' if len(d2[2]) == 1 else ''})"
        if kind == "value":
            if not _same_value(d1[1], d2[1]):
                raise Unsupported(f"{where} is {_describe_value(d1[1])} in one call and "
                                  f"{_describe_value(d2[1])} in the next: a number computed in Python each "
                                  "call (a step count, a random seed, a value read with .item()) cannot be "
                                  "replayed")
            return self.name("c", d2[1])
        return self.external(self.first.externals[d1[1]], self.second.externals[d2[1]], where)

    def handed_out(self, d1, d2, where: str, event: int) -> str:
        """An array the replay gives to the user (a .grad, a returned tensor): a constant is copied
        each time, so that writing into it cannot change what later replays pass to kernels."""
        text = self.arg(d1, d2, where, event)
        return f"{text}.copy()" if d2[0] == "ext" and text.startswith("c") else text

    def external(self, e1, e2, where: str) -> str:
        a1, owner1, copy1, mutated1 = e1
        a2, owner2, copy2, mutated2 = e2
        same_layout = a1.shape == a2.shape and a1.strides == a2.strides and a1.dtype == a2.dtype
        if owner1 is owner2 and same_layout and \
                a1.__array_interface__["data"][0] == a2.__array_interface__["data"][0]:
            return self.name("p", a2)  # persistent: the same memory every call
        if same_layout and np.array_equal(copy1, copy2, equal_nan=copy1.dtype.kind in "fc"):
            if mutated1 or mutated2:
                raise Unsupported(f"{where}: a kernel writes into an array made outside the kernels (shape "
                                  f"{a2.shape}, dtype {a2.dtype})")
            copy2.flags.writeable = False
            return self.name("c", copy2)  # a constant: equal values every call
        raise Unsupported(f"{where}: an array made outside tinyml's kernels (shape {a2.shape}, dtype "
                          f"{a2.dtype}) has different values in two calls. It is computed in Python or "
                          "numpy (data turned into a tensor inside the function, a random mask such as "
                          "dropout's, a value read with .item()); pass it as a tensor argument, or keep "
                          "that part out of the compiled function")

    def leaf(self, l1, l2, i1: dict, i2: dict, where: str) -> str:
        if id(l1) in i1 and i1.get(id(l1)) == i2.get(id(l2)):
            return f"t{i2[id(l2)]}"  # a tensor argument of the function: the one of this call
        if l1 is not l2:
            raise Unsupported(f"{where}: gradients flow to different leaf tensors in two calls")
        self.guards.append((l2, l2._data))
        return self.name("L", l2)

    # -- events -----------------------------------------------------------------------------------
    def build(self, inputs1: list, inputs2: list):
        ev1, ev2 = self.first.events, self.second.events
        i1 = {id(t): k for k, t in enumerate(inputs1)}
        i2 = {id(t): k for k, t in enumerate(inputs2)}
        body = []  # (event index, [lines], slots it defines)
        for n, (e1, e2) in enumerate(zip(ev1, ev2)):
            if e1[0] != e2[0]:
                raise Unsupported(f"event {n} differs between two calls: {_event_name(e1)} vs "
                                  f"{_event_name(e2)}")
            if e2[0] == "call":
                body.append((n, *self.call(e1[1], e2[1], n)))
            elif e2[0] == "segment":
                body.append((n, self.segment(e1, e2, n), ()))
            else:
                body.append((n, self.bind(e1[1], e2[1], n, i1, i2), ()))
        if len(ev1) != len(ev2):
            longer = ev1 if len(ev1) > len(ev2) else ev2
            raise Unsupported(f"the two calls ran different numbers of kernels and steps ({len(ev1)} vs "
                              f"{len(ev2)}; first extra: {_event_name(longer[min(len(ev1), len(ev2))])})")
        return body

    def call(self, c1, c2, n: int):
        where = f"kernel {c2.name!r} (call {n})"
        if c1.fn is not c2.fn or c1.name != c2.name or len(c1.args) != len(c2.args) or \
                sorted(c1.kwargs) != sorted(c2.kwargs):
            raise Unsupported(f"event {n} differs between two calls: {c1.name!r} vs {c2.name!r}")
        args = [self.arg(a, b, f"{where} argument {i}", n) for i, (a, b) in enumerate(zip(c1.args, c2.args))]
        args += [f"{k}={self.arg(c1.kwargs[k], c2.kwargs[k], f'{where} argument {k}=', n)}"
                 for k in c2.kwargs]
        text = f"{self.name('k', c2.fn)}({', '.join(args)})"
        if c1.as_array != c2.as_array:
            raise Unsupported(f"{where} returns a numpy scalar in one call and an array in the next")
        if c2.as_array:
            text = f"_as_arrays({text})"
        outs, defined = c2.outs, []
        if c1.outs[0] != outs[0] or (outs[0] != "value" and c1.outs != outs):  # new arrays, or the same views
            raise Unsupported(f"{where} returns different kinds of results in two calls")
        if outs[0] == "one":
            targets = [outs[1]]
        elif outs[0] == "many":
            targets = list(outs[2])
        else:
            targets = None
        names = []
        for d in targets or ():
            if d is not None and d[0] == "slot":
                names.append(f"s{d[1]}")
                defined.append(d[1])
            else:
                names.append("_")
        if c2.name in _PURE_VIEWS and getattr(c2.fn, "__module__", None) == _VIEWS_MODULE and targets \
                and all(d is not None and d[0] == "view" for d in targets):
            return [], defined  # a view that readers rebuild themselves: nothing to run
        self.n_kernels += 1
        lines = []
        if c2.backend in _DECLINING:
            lines.append(f"r = {text}")
            lines.append(f"if r is NotImplemented: _declined({c2.name!r})")
            text = "r"
        if targets is None or all(x == "_" for x in names):
            if text != "r":
                lines.append(text)
        elif outs[0] == "one":
            lines.append(f"{names[0]} = {text}")
        else:
            lines.append(f"{', '.join(names)}{',' if len(names) == 1 else ''} = {text}")
        return lines, defined

    def segment(self, e1, e2, n: int) -> list:
        _, fn1, obj1, args1, kw1 = e1
        _, fn2, obj2, args2, kw2 = e2
        same_args = len(args1) == len(args2) and all(_same_object(a, b) for a, b in zip(args1, args2))
        if fn1 is not fn2 or obj1 is not obj2 or not same_args or kw1.keys() != kw2.keys() or \
                not all(_same_object(kw1[k], kw2[k]) for k in kw2):
            raise Unsupported(f"event {n}: {_qualname(fn2)} is called on other objects or with other "
                              "arguments in two calls")
        call = f"{self.name('g', fn2)}({'' if obj2 is None else self.name('o', obj2) + ', '}" \
               f"*{self.name('a', args2)}, **{self.name('w', kw2)})"
        return [call]

    def bind(self, b1, b2, n: int, i1: dict, i2: dict) -> list:
        if len(b1) != len(b2):
            raise Unsupported(f"event {n}: gradients reach different numbers of leaves in two calls")
        lines = []
        for (l1, d1), (l2, d2) in zip(b1, b2):
            target = self.leaf(l1, l2, i1, i2, f"event {n}")
            if d1 is None or d2 is None:
                if d1 is not d2:
                    raise Unsupported(f"event {n}: a leaf has a gradient in one call and none in the next")
                lines.append(f"{target}._grad = None")
                continue
            src = self.handed_out(d1, d2, f"event {n}: the .grad of a leaf of shape {tuple(l2.shape)}", n)
            lines.append(f"{target}._grad = _make({src}, {self.name('d', l2.device)})")
        return lines


def _same_object(a, b) -> bool:
    """A segment's argument: the same object, a list of the same objects, or an equal value."""
    if a is b:
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b))
    return _same_value(a, b)


def _qualname(fn) -> str:
    return getattr(fn, "__qualname__", repr(fn))


def _event_name(event) -> str:
    if event[0] == "call":
        return f"kernel {event[1].name!r}"
    if event[0] == "segment":
        return _qualname(event[1])
    return "gradients of leaves"


def _declined(name: str):
    raise RuntimeError(f"tinyml.compile: kernel {name!r} declined its inputs in a replay although it ran on "
                       "them when recorded; call .reset() on the compiled function and report this")


def _as_arrays(out):
    """A kernel's numpy-scalar results as 0-d arrays (what `run` makes of them)."""
    if out is NotImplemented:
        return out
    if type(out) in (tuple, list):
        return type(out)([np.asarray(o) if isinstance(o, np.generic) else o for o in out])
    return np.asarray(out)


class Program:
    """A replay: `run(input_arrays, input_tensors)` runs the events and returns the arrays named by
    `result_descs` (what the function returned)."""

    def __init__(self, source: str, namespace: dict, guards: list, n_kernels: int, n_events: int,
                 modes: list):
        self.source, self.guards, self.n_kernels, self.n_events = source, guards, n_kernels, n_events
        self.modes = modes  # (module, its .training when recorded)
        namespace["_declined"], namespace["_as_arrays"] = _declined, _as_arrays
        exec(compile(source, "<tinyml.compile replay>", "exec"), namespace)
        self.run = namespace["replay"]

    def guards_hold(self) -> bool:
        """The leaves (parameters) still hold the arrays recorded and still require grad, and every
        module called is still in the mode (train or eval) it was recorded in."""
        for t, arr in self.guards:
            if t._data is not arr or not t.requires_grad:
                return False
        for module, training in self.modes:
            if module.training is not training:
                return False
        return True


def build_program(first, second, inputs1: list, inputs2: list, results1: list, results2: list) -> Program:
    """The replay of `second`, after checking it against `first` (see the module docstring).
    results: the descs of the arrays of the tensors the function returned, in order."""
    b = _Builder(first, second)
    body = b.build(inputs1, inputs2)
    end = len(second.events)
    if len(results1) != len(results2):
        raise Unsupported("the function returned different numbers of tensors in two calls")
    returned = [b.handed_out(r1, r2, f"returned tensor {k}", end)
                for k, (r1, r2) in enumerate(zip(results1, results2))]
    defined_at: dict[int, int] = {}
    for n, _, defined in body:
        for s in defined:
            defined_at[s] = n
    frees: dict[int, list] = {}
    for s, n in defined_at.items():
        last = b.uses.get(s, n)
        if last < end:
            frees.setdefault(last, []).append(s)
    lines = ["def replay(inputs, tensors):"]
    lines += [f"    i{k} = inputs[{k}]" for k in range(len(second.input_arrays))]
    lines += [f"    t{k} = tensors[{k}]" for k in range(len(inputs2))]
    for n, event_lines, _ in body:
        lines += [f"    {line}" for line in event_lines]
        if n in frees:
            lines.append(f"    del {', '.join(f's{s}' for s in sorted(frees[n]))}")
    lines.append(f"    return ({', '.join(returned)}{',' if len(returned) == 1 else ''})")
    modes1 = {id(m): m.training for m in first.modules.values()}
    modes = [(m, m.training) for m in second.modules.values()]
    if modes1 != {id(m): t for m, t in modes}:
        raise Unsupported("the modules called, or their train/eval modes, differ between two calls")
    return Program("\n".join(lines) + "\n", b.namespace, b.guards, b.n_kernels, len(body), modes)
