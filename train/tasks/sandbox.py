"""A sandboxed executor for model-written Python: the code never runs in the caller's process.

    result = run_python("def solution():\\n    return 3 * 4\\n")
    result.ok, result.answer, result.kind        # True, 12, "ok"

Each call starts `python -I -S` (isolated: no site, no user paths, no PYTHON* variables) in a
new session, with its limits set before it runs anything:

    RLIMIT_CPU    cpu_seconds (SIGXCPU, then SIGKILL one second later)
    RLIMIT_AS     memory_mb of address space (a huge allocation raises MemoryError)
    RLIMIT_NPROC  0: fork and threads fail           RLIMIT_FSIZE 0: no file can grow
                  (the kernel does not apply it to root: there the import allow-list, which
                  reaches no os or subprocess, and the process-group kill are what stop a fork)
    RLIMIT_CORE   0: no core dumps                   RLIMIT_NOFILE 16
    wall clock    timeout seconds, then SIGKILL to the whole process group

Inside, the code is checked before it runs: names and attributes starting with an underscore are
refused (the `().__class__.__base__.__subclasses__()` escapes, `__import__`, `__builtins__`), and so
are the frame and code attributes (gi_frame, f_back, f_globals, tb_frame, co_code, ...); the
builtins are an allow-list without open, eval, exec, compile, getattr, globals, input or
breakpoint, and `import` reaches only ALLOWED_IMPORTS (math, fractions, ...), as a copy of the
module's public names without its submodules (re.enum.sys would reach os). print writes to a
buffer capped at max_output characters; the caller also stops reading the pipe past the cap. The
result is `entry()`'s return value (default entry "solution"), or the value of `answer` when the
code defines no entry function: numbers, strings and lists of them as they are, other values as
their str.

Error kinds: ok, syntax, forbidden (refused name, attribute or import), error (an exception in
the code), memory, timeout (wall clock), cpu (CPU limit), output (the print cap), no_answer,
crashed (the child died otherwise).
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

ALLOWED_IMPORTS = ("math", "fractions", "decimal", "statistics", "itertools", "functools", "collections",
                   "operator", "string", "re", "datetime")


@dataclass
class SandboxResult:
    ok: bool
    kind: str  # see the module docstring
    answer: object = None
    message: str = ""
    stdout: str = ""
    seconds: float = 0.0


# The child's program: read the job from stdin, check the code's AST, run it with restricted
# builtins, write one JSON line. Only the standard library, and nothing the job can reach.
_CHILD = r'''
import ast, builtins, json, sys, types
job = json.loads(sys.stdin.read())
allowed, cap = set(job["allowed"]), job["max_output"]
out, size = [], [0]
def emit(d):
    sys.__stdout__.write(json.dumps(d) + "\n"); sys.__stdout__.flush()
class OutputLimit(BaseException):  # not an Exception: `except Exception` in the code cannot swallow it
    pass
def capped_print(*args, sep=" ", end="\n"):
    text = sep.join(str(a) for a in args) + end
    size[0] += len(text)
    if size[0] > cap:
        raise OutputLimit()
    out.append(text)
def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level or name.split(".")[0] not in allowed:
        raise ImportError(f"import of {name!r} is not allowed (allowed: {', '.join(sorted(allowed))})")
    module = __import__(name, globals, locals, fromlist, level)
    # a copy without the module's own imports: re.enum.sys.modules would reach os
    public = {k: v for k, v in vars(module).items()
              if not k.startswith("_") and not isinstance(v, types.ModuleType)}
    return types.SimpleNamespace(**public)
SAFE = ("abs all any bin bool chr dict divmod enumerate filter float format frozenset hex int "
        "isinstance issubclass iter len list map max min next oct ord pow range repr reversed round set "
        "slice sorted str sum tuple zip ArithmeticError AssertionError Exception IndexError KeyError "
        "LookupError OSError OverflowError RecursionError StopIteration TypeError ValueError "
        "ZeroDivisionError NotImplementedError True False None").split()
# underscores (dunders) and the frame and code attributes that lead back to the real globals:
# (x for x in ()).gi_frame.f_back.f_globals would reach this program's own names
BLOCKED = ("_", "f_", "gi_", "cr_", "ag_", "tb_", "co_")
safe = {n: getattr(builtins, n) for n in SAFE}
safe.update(print=capped_print, __import__=guarded_import, __build_class__=builtins.__build_class__)
try:
    tree = ast.parse(job["code"])
except SyntaxError as e:
    emit({"kind": "syntax", "message": f"line {e.lineno}: {e.msg}"}); sys.exit(0)
for node in ast.walk(tree):
    name = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
            else node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else "")
    if name.startswith(BLOCKED if isinstance(node, ast.Attribute) else "_"):
        emit({"kind": "forbidden", "message": f"line {node.lineno}: the name {name!r} is not allowed"})
        sys.exit(0)
scope = {"__builtins__": safe, "__name__": "sandbox"}
NOTHING = object()
try:
    exec(compile(tree, "<model>", "exec"), scope)
    entry = job["entry"]
    value = scope[entry]() if callable(scope.get(entry)) else scope.get("answer", NOTHING)
    if value is NOTHING:
        emit({"kind": "no_answer", "message": f"no function {entry}() and no variable answer",
              "stdout": "".join(out)})
    else:
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10000:
            value = "a number of %d bits" % value.bit_length()
        try:  # numbers, strings and lists of them come back as they are; anything else as its str
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = json.dumps(str(value)[:1000])
        if len(text) > max(cap, 1000):
            text = json.dumps(str(value)[:1000])
        printed = json.dumps("".join(out))
        sys.__stdout__.write('{"kind": "ok", "stdout": %s, "answer": %s}\n' % (printed, text))
except OutputLimit:
    emit({"kind": "output", "message": f"the code printed more than {cap} characters"})
except MemoryError:
    emit({"kind": "memory", "message": "the code ran out of memory"})
except ImportError as e:
    emit({"kind": "forbidden", "message": str(e)[:500]})
except BaseException as e:
    emit({"kind": "error", "message": f"{type(e).__name__}: {str(e)[:500]}", "stdout": "".join(out)})
'''


def _limits(cpu_seconds: int, memory_mb: int):
    def apply():  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    return apply


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: its group id is its pid
    except ProcessLookupError:
        pass


def _read_capped(proc: subprocess.Popen, deadline: float, cap: int) -> tuple[bytes, str | None]:
    """The child's stdout until EOF; "timeout" at the deadline, "output" past cap bytes."""
    fd, chunks, total = proc.stdout.fileno(), [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), "timeout"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), None
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            return b"".join(chunks), "output"


def run_python(code: str, entry: str = "solution", timeout: float = 5.0, cpu_seconds: int = 2,
               memory_mb: int = 256, max_output: int = 10_000,
               allowed_imports: tuple[str, ...] = ALLOWED_IMPORTS) -> SandboxResult:
    """Run untrusted `code` in a limited child process and return what `entry()` returned."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    if timeout <= 0 or cpu_seconds < 1 or memory_mb < 64 or max_output < 0:
        raise ValueError(f"need timeout > 0, cpu_seconds >= 1, memory_mb >= 64 and max_output >= 0, got "
                         f"{timeout}, {cpu_seconds}, {memory_mb}, {max_output}")
    job = json.dumps({"code": code, "entry": entry, "allowed": list(allowed_imports),
                      "max_output": max_output})
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_limits(cpu_seconds, memory_mb), env={}, cwd="/")
    try:
        try:
            proc.stdin.write(job.encode())
            proc.stdin.close()
        except BrokenPipeError:  # the child died before reading its job
            pass
        raw, stopped = _read_capped(proc, started + timeout, max_output + 4096)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        proc.wait()
        proc.stdout.close()
    seconds = time.monotonic() - started
    if stopped == "timeout":
        return SandboxResult(False, "timeout", message=f"killed after {timeout:g} s of wall time",
                             seconds=seconds)
    if stopped == "output":
        return SandboxResult(False, "output", message=f"the code printed more than {max_output} characters",
                             seconds=seconds)
    try:
        reply = json.loads(raw.decode().strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return SandboxResult(False, "cpu", message=f"killed at the CPU limit of {cpu_seconds} s",
                                 seconds=seconds)
        return SandboxResult(False, "crashed", message=f"the sandbox exited with status {proc.returncode}",
                             seconds=seconds)
    kind = reply["kind"]
    return SandboxResult(kind == "ok", kind, reply.get("answer"), reply.get("message", ""),
                         reply.get("stdout", ""), seconds)
