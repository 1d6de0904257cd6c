"""Mutation testing with the standard library: do the tests notice a one-token change?

For each target source file, every single-point mutant is generated from Python's ``ast``:

- operators: ``+`` ↔ ``-``, ``*`` ↔ ``/`` (also in ``+=`` …), ``<`` ↔ ``<=``, ``>`` ↔ ``>=``,
  ``==`` ↔ ``!=``, ``and`` ↔ ``or``;
- constants: a number n → n + 1 (so 0 → 1), ``True`` ↔ ``False``;
- a unary minus removed; a returned comparison negated (``not``) or arithmetic negated (``-``).

Docstrings, strings, type annotations, ``__all__``, f-strings, ``assert`` statements and the
arguments of ``raise``, ``print``, ``logger.*``/``logging.*`` and ``warnings.warn`` are never
mutated. A mutant is one
edit of the source text (the rest of the file, comments included, stays byte for byte), written
into a copy of the repository made once (``.venv``, ``.git``, ``runs`` and caches left out). The
test files mapped to the source file then run with ``pytest -x -q -p no:cacheprovider`` and a
per-mutant timeout: a failing run kills the mutant. Mutants listed in ``--equivalent``
(``file:line:id``, one per line, ``#`` comments allowed) are left out of the score.

Examples::

    python tests/mutate.py                                   # the default modules and tests
    python tests/mutate.py --modules trainables/methods/outer_losses.py=tests/test_loss_values.py
    python tests/mutate.py --modules 'raysearch/tuning/scheduler.py@time_budget,grace_t=tests/test_search_numbers.py'
    python tests/mutate.py --limit 40 --jobs 2 --report mutants.md --json mutants.json
"""

from __future__ import annotations

import argparse
import ast
import bisect
import importlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parent.parent
IGNORED = (".venv", "venv", ".git", "runs", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "*.egg-info")

DEFAULT_MODULES: dict[str, list[str]] = {
    "trainables/methods/outer_losses.py": ["tests/test_loss_values.py", "tests/test_option_bounds.py",
                                     "tests/test_authors_settings.py", "tests/test_methods.py"],
    "trainables/schedules/amata.py": ["tests/test_schedules.py", "tests/test_option_bounds.py",
                                      "tests/test_authors_settings.py", "tests/test_search_numbers.py",
                                      "tests/test_fixed_start_attacks.py"],
    "trainables/schedules/mplus.py": ["tests/test_schedules.py", "tests/test_option_bounds.py",
                                      "tests/test_search_numbers.py"],
    "trainables/methods/atas.py": ["tests/test_option_bounds.py", "tests/test_authors_settings.py",
                                   "tests/test_fixed_start_attacks.py", "tests/test_methods.py"],
    "raysearch/tuning/budget.py": ["tests/test_search_numbers.py", "tests/test_searcher.py"],
    # the arithmetic of the scheduler module; the rest only forwards calls to Ray's schedulers
    "raysearch/tuning/scheduler.py@_whole,time_budget,grace_t,KeepBudget,make_scheduler,is_warm_start,"
    "FinishWarmStarts,_train_keys": ["tests/test_search_numbers.py"],
    "raysearch/tuning/objective.py": ["tests/test_search_numbers.py", "tests/test_searcher.py"],
}

SWAPS: dict[type[ast.AST], type[ast.AST]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.And: ast.Or, ast.Or: ast.And,
}
SYMBOLS: dict[type[ast.AST], str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
    ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.And: "and", ast.Or: "or",
}
QUIET_CALLS = re.compile(r"^(print|warnings\.warn|logging\.\w+|logger\.\w+|log\.\w+)$")


@dataclass(frozen=True)
class Mutant:
    """One single-point change: where, which (``id``), and the source line before and after."""

    file: str
    line: int
    id: str
    original: str
    mutated: str
    start: int  # byte offsets of the replaced span in the file
    end: int
    replacement: str

    @property
    def key(self) -> str:
        return f"{self.file}:{self.line}:{self.id}"


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed, survived, timeout, equivalent
    seconds: float = 0.0


@dataclass
class Target:
    """A source file, the functions/classes to mutate (empty: all) and the tests that cover it."""

    file: str
    tests: list[str]
    scopes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- generating mutants


class _Offsets:
    """(line, UTF-8 column) → byte offset in the file, and the text of a line."""

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.starts = [0]
        for i, byte in enumerate(source):
            if byte == ord("\n"):
                self.starts.append(i + 1)

    def at(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def begin(self, node: ast.AST) -> int:
        return self.at(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def finish(self, node: ast.AST) -> int:
        return self.at(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def text(self, start: int, end: int) -> str:
        return self.source[start:end].decode()


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: annotations, docstrings, ``__all__``, f-strings, messages."""
    skipped: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skipped += [a.annotation for a in (*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs,
                                               node.args.vararg, node.args.kwarg) if a and a.annotation]
            skipped += [node.returns] if node.returns else []
        elif isinstance(node, ast.AnnAssign):
            skipped.append(node.annotation)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skipped.append(node)
        elif isinstance(node, (ast.JoinedStr, ast.Raise, ast.Assert)):
            skipped.append(node)
        elif isinstance(node, ast.Call) and QUIET_CALLS.match(ast.unparse(node.func)):
            skipped.append(node)
    return {id(sub) for node in skipped for sub in ast.walk(node)}


def _in_scope(tree: ast.Module, scopes: Sequence[str]) -> set[int] | None:
    """ids of the nodes inside the named top-level functions/classes (None: everything)."""
    if not scopes:
        return None
    chosen = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in scopes]
    missing = set(scopes) - {n.name for n in chosen}
    if missing:
        raise SystemExit(f"no top-level function or class named {', '.join(sorted(missing))}")
    return {id(sub) for node in chosen for sub in ast.walk(node)}


def _gap_swap(offsets: _Offsets, left: ast.AST, right: ast.AST, op: ast.AST) -> tuple[int, int, str] | None:
    """Replace the operator token between two operands: (start, end, replacement)."""
    start, end = offsets.finish(left), offsets.begin(right)
    gap = offsets.text(start, end)
    old, new = SYMBOLS[type(op)], SYMBOLS[SWAPS[type(op)]]
    pattern = rf"\b{old}\b" if old.isalpha() else rf"(?<![<>=!/*+-]){re.escape(old)}(?![=/*])"
    match = re.search(pattern, gap)
    if match is None:
        return None
    return start, end, gap[: match.start()] + new + gap[match.end():]


def _operator_edits(node: ast.AST, offsets: _Offsets) -> Iterator[tuple[str, int, int, str]]:
    """(id, start, end, replacement) for every operator swap at ``node``."""
    if isinstance(node, ast.BinOp) and type(node.op) in SWAPS:
        edit = _gap_swap(offsets, node.left, node.right, node.op)
        if edit:
            yield (f"binop:{SYMBOLS[type(node.op)]}~{SYMBOLS[SWAPS[type(node.op)]]}", *edit)
    elif isinstance(node, ast.AugAssign) and type(node.op) in SWAPS:
        edit = _gap_swap(offsets, node.target, node.value, node.op)
        if edit:
            yield (f"augassign:{SYMBOLS[type(node.op)]}=~{SYMBOLS[SWAPS[type(node.op)]]}=", *edit)
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for left, right, op in zip(operands, operands[1:], node.ops, strict=False):
            if type(op) in SWAPS:
                edit = _gap_swap(offsets, left, right, op)
                if edit:
                    yield (f"compare:{SYMBOLS[type(op)]}~{SYMBOLS[SWAPS[type(op)]]}", *edit)
    elif isinstance(node, ast.BoolOp):
        for left, right in zip(node.values, node.values[1:], strict=False):
            edit = _gap_swap(offsets, left, right, node.op)
            if edit:
                yield (f"boolop:{SYMBOLS[type(node.op)]}~{SYMBOLS[SWAPS[type(node.op)]]}", *edit)


def _value_edits(node: ast.AST, offsets: _Offsets) -> Iterator[tuple[str, int, int, str]]:
    """(id, start, end, replacement) for constant tweaks, unary-minus removal, return negation."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield f"const:{node.value}~{not node.value}", offsets.begin(node), offsets.finish(node), str(not node.value)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        bumped = node.value + 1
        yield f"const:{node.value!r}~{bumped!r}", offsets.begin(node), offsets.finish(node), repr(bumped)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        start, operand = offsets.begin(node), offsets.begin(node.operand)
        yield "unary:-~", start, operand, ""
    elif isinstance(node, ast.Return) and node.value is not None:
        start, end = offsets.begin(node.value), offsets.finish(node.value)
        text = offsets.text(start, end)
        if isinstance(node.value, (ast.Compare, ast.BoolOp)) or (
                isinstance(node.value, ast.UnaryOp) and isinstance(node.value.op, ast.Not)):
            yield "return:not", start, end, f"not ({text})"
        elif isinstance(node.value, ast.BinOp):
            yield "return:neg", start, end, f"-({text})"


def generate_mutants(file: str, source: bytes, scopes: Sequence[str] = ()) -> list[Mutant]:
    """Every single-point mutant of ``source`` (the text of ``file``), in file order."""
    tree = ast.parse(source)
    offsets = _Offsets(source)
    skipped, allowed = _skipped_nodes(tree), _in_scope(tree, scopes)
    mutants: list[Mutant] = []
    for node in ast.walk(tree):
        if id(node) in skipped or (allowed is not None and id(node) not in allowed):
            continue
        for kind, start, end, replacement in (*_operator_edits(node, offsets), *_value_edits(node, offsets)):
            mutants.append(_mutant(file, offsets, kind, start, end, replacement))
    return sorted(mutants, key=lambda m: (m.start, m.id))


def _mutant(file: str, offsets: _Offsets, kind: str, start: int, end: int, replacement: str) -> Mutant:
    line = bisect.bisect_right(offsets.starts, start)
    line_start = offsets.starts[line - 1]
    line_end = offsets.source.find(b"\n", end)
    line_end = len(offsets.source) if line_end < 0 else line_end
    original = offsets.text(line_start, line_end)
    mutated = offsets.text(line_start, start) + replacement + offsets.text(end, line_end)
    column = len(offsets.source[line_start:start].decode())
    return Mutant(file, line, f"{kind}@{column}", original.strip(), mutated.strip(), start, end, replacement)


def apply(source: bytes, mutant: Mutant) -> bytes:
    return source[: mutant.start] + mutant.replacement.encode() + source[mutant.end:]


# --------------------------------------------------------------------------- running the tests


def copy_tree(root: Path) -> Path:
    """A copy of the repository without the virtual environment, git, runs and caches."""
    target = Path(tempfile.mkdtemp(prefix="mutate-")) / "repo"
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
    return target


PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider"]
PRELOAD = "torch,numpy,optuna,ray.tune,sklearn,yaml,pytest"


def run_tests(repo: Path, tests: Sequence[str], timeout: float) -> tuple[str, float]:
    """("passed" / "failed" / "timeout", seconds) of ``pytest -x`` on ``tests`` in ``repo``, in a
    new interpreter."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # a stale .pyc could hide a same-size mutant
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests], cwd=repo, env=env,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started
    return ("passed" if done.returncode == 0 else "failed"), time.monotonic() - started


def forked_tests(repo: Path, tests: Sequence[str], timeout: float) -> tuple[str, float]:
    """The same as :func:`run_tests` in a child forked from this (preloaded) process: the heavy
    dependencies are imported once, the project's modules afresh in every child."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: its own process group, output discarded
        code = 3
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.chdir(repo)
            sys.path.insert(0, str(repo))
            sys.dont_write_bytecode = True
            import pytest

            code = int(pytest.main([*PYTEST_ARGS, *tests]))
        finally:
            os._exit(code)
    while time.monotonic() - started < timeout:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return ("passed" if os.waitstatus_to_exitcode(status) == 0 else "failed"), time.monotonic() - started
        time.sleep(0.02)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "timeout", time.monotonic() - started


def serve(preload: str) -> None:
    """Worker loop (``--serve``): import ``preload`` once, then answer one JSON request per line
    ({"repo", "tests", "timeout"}) with {"status", "seconds"} from :func:`forked_tests`."""
    for name in filter(None, preload.split(",")):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for line in sys.stdin:
        request = json.loads(line)
        status, seconds = forked_tests(Path(request["repo"]), request["tests"], request["timeout"])
        print(json.dumps({"status": status, "seconds": seconds}), flush=True)


class Worker:
    """One repository copy and the way its tests run: a preloaded ``--serve`` process, or a new
    interpreter per run when ``preload`` is empty."""

    def __init__(self, preload: str) -> None:
        self.repo = copy_tree(ROOT)
        self.process = None
        if preload:
            self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", preload],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, tests: Sequence[str], timeout: float) -> tuple[str, float]:
        if self.process is None:
            return run_tests(self.repo, tests, timeout)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"repo": str(self.repo), "tests": list(tests), "timeout": timeout}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return answer["status"], answer["seconds"]

    def close(self) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait()
        shutil.rmtree(self.repo.parent, ignore_errors=True)


def test_mutant(worker: Worker, mutant: Mutant, tests: Sequence[str], timeout: float) -> Outcome:
    path = worker.repo / mutant.file
    original = path.read_bytes()
    path.write_bytes(apply(original, mutant))
    try:
        status, seconds = worker.run(tests, timeout)
    finally:
        path.write_bytes(original)
    return Outcome(mutant, {"passed": "survived", "failed": "killed"}.get(status, status), seconds)


# --------------------------------------------------------------------------- the command


def parse_modules(specs: Sequence[str] | None) -> list[Target]:
    """``SRC[@SCOPE,...]=TEST[,TEST...]`` items (or the defaults) as targets."""
    items = specs or [f"{src}={','.join(tests)}" for src, tests in DEFAULT_MODULES.items()]
    targets = []
    for item in items:
        source, sep, tests = item.partition("=")
        if not sep or not tests:
            raise SystemExit(f"--modules item {item!r}: expected SRC[@FUNC,...]=TEST[,TEST...]")
        file, _, scopes = source.partition("@")
        targets.append(Target(file, tests.split(","), [s for s in scopes.split(",") if s]))
    return targets


def read_equivalent(path: str | None) -> dict[str, str]:
    """``file:line:id  # reason`` lines → {key: reason}."""
    if not path:
        return {}
    entries = {}
    for raw in Path(path).read_text().splitlines():
        key, _, reason = raw.partition("#")
        if key.strip():
            entries[key.strip()] = reason.strip()
    return entries


def score(outcomes: Sequence[Outcome]) -> tuple[int, int, int, int, float]:
    """(killed, survived, timeout, equivalent, score); timeouts count as detected."""
    count = {s: sum(o.status == s for o in outcomes) for s in ("killed", "survived", "timeout", "equivalent")}
    scored = count["killed"] + count["survived"] + count["timeout"]
    value = (count["killed"] + count["timeout"]) / scored if scored else 1.0
    return count["killed"], count["survived"], count["timeout"], count["equivalent"], value


def write_report(path: Path, outcomes: Sequence[Outcome], seconds: float, equivalent: dict[str, str]) -> None:
    killed, survived, timeouts, equivalents, value = score(outcomes)
    lines = [f"# Mutation testing: {value:.1%} detected", "",
             f"killed {killed}, survived {survived}, timeout {timeouts}, equivalent {equivalents}, "
             f"wall time {seconds:.0f} s", "", "## Surviving mutants", ""]
    lines += [f"- `{o.mutant.key}`: `{o.mutant.original}` → `{o.mutant.mutated}`"
              for o in outcomes if o.status == "survived"] or ["none"]
    lines += ["", "## Equivalent (excluded)", ""]
    lines += [f"- `{o.mutant.key}`: {equivalent.get(o.mutant.key, '')}" for o in outcomes
              if o.status == "equivalent"] or ["none"]
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--modules", nargs="+", metavar="SRC[@FUNC,...]=TEST[,TEST...]",
                        help="source files and the test files that cover them (default: the built-in map)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once, one repository copy each")
    parser.add_argument("--limit", type=int, default=0, help="test a random sample of N mutants (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="seconds per mutant (0: 3 x the unmutated run + 10 s)")
    parser.add_argument("--equivalent", help="file of mutants judged equivalent (file:line:id  # reason)")
    parser.add_argument("--report", default="mutants.md", help="markdown report of the surviving mutants")
    parser.add_argument("--json", help="all outcomes as JSON")
    parser.add_argument("--preload", default=PRELOAD,
                        help="modules imported once per job and forked for every run ('': a new interpreter per run)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--serve", metavar="PRELOAD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0

    targets = parse_modules(args.modules)
    equivalent = read_equivalent(args.equivalent)
    plan = [(m, t) for t in targets for m in generate_mutants(t.file, (ROOT / t.file).read_bytes(), t.scopes)]
    if args.limit and args.limit < len(plan):
        plan = sorted(random.Random(args.seed).sample(plan, args.limit), key=lambda p: (p[0].file, p[0].start))
    if args.list:
        for mutant, _ in plan:
            print(f"{mutant.key}: {mutant.original}  ->  {mutant.mutated}")
        return 0

    started = time.monotonic()
    workers: Queue[Worker] = Queue()
    for _ in range(max(1, args.jobs)):
        workers.put(Worker(args.preload))
    try:
        timeouts = baseline_timeouts(workers, targets, args.timeout)
        outcomes = run_plan(plan, workers, timeouts, equivalent, args.jobs)
    finally:
        while not workers.empty():
            workers.get().close()
    seconds = time.monotonic() - started

    summarize(outcomes, seconds, targets)
    write_report(Path(args.report), outcomes, seconds, equivalent)
    if args.json:
        Path(args.json).write_text(json.dumps([{**asdict(o.mutant), "status": o.status, "seconds": o.seconds}
                                               for o in outcomes], indent=1))
    return 0


def baseline_timeouts(workers: Queue[Worker], targets: Sequence[Target], timeout: float) -> dict[str, float]:
    """The per-mutant timeout of each target; the unmutated tests must pass first."""
    worker = workers.get()
    try:
        limits = {}
        for target in targets:
            status, seconds = worker.run(target.tests, timeout or 3600)
            if status != "passed":
                raise SystemExit(f"the tests of {target.file} do not pass unmutated ({status}): "
                                 f"{' '.join(target.tests)}")
            limits[target.file] = timeout or 3 * seconds + 10
            print(f"{target.file}: unmutated tests pass in {seconds:.1f} s", flush=True)
        return limits
    finally:
        workers.put(worker)


def run_plan(plan: Sequence[tuple[Mutant, Target]], workers: Queue[Worker], timeouts: dict[str, float],
             equivalent: dict[str, str], jobs: int) -> list[Outcome]:
    """Every mutant of ``plan`` through the first free worker (``jobs`` at a time)."""
    def one(item: tuple[Mutant, Target]) -> Outcome:
        mutant, target = item
        if mutant.key in equivalent:
            return Outcome(mutant, "equivalent")
        worker = workers.get()
        try:
            outcome = test_mutant(worker, mutant, target.tests, timeouts[target.file])
        finally:
            workers.put(worker)
        print(f"{outcome.status:9} {outcome.seconds:5.1f}s {mutant.key}: {mutant.mutated}", flush=True)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, plan))


def summarize(outcomes: Sequence[Outcome], seconds: float, targets: Sequence[Target]) -> None:
    print()
    for target in targets:
        mine = [o for o in outcomes if o.mutant.file == target.file]
        killed, survived, timeouts, equivalents, value = score(mine)
        print(f"{target.file}: killed {killed}, survived {survived}, timeout {timeouts}, "
              f"equivalent {equivalents}: {value:.1%}")
    killed, survived, timeouts, equivalents, value = score(outcomes)
    print(f"total: killed {killed}, survived {survived}, timeout {timeouts}, equivalent {equivalents}: "
          f"{value:.1%} detected in {seconds:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
