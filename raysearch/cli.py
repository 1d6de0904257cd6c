"""The ``raysearch`` command line (SPEC §10): a thin layer over the Python functions.

Exit codes: 0 success; 2 bad input (one clear line, nothing was started); 130 a search or
confirmation interrupted by Ctrl-C (it prints the ``--resume`` line; shells use 128 + SIGINT);
1 anything else (a storage error is one line too).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from trainables.registry import ConfigError

INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 (argparse's own code too)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _number(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _bench_parser(commands: Any) -> None:
    """The ``bench`` command's arguments."""
    p = commands.add_parser("bench", help="measure attack efficiency, overheads, the search's economics, GPU paths")
    p.add_argument("--json", action="store_true", help="print all figures as one JSON object, last")
    p.add_argument("--quick", action="store_true", help="a run of seconds: small_cnn only, fewer repetitions")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--search", action="store_true",
                      help="compare today's search with the new default on the demo (minutes per search seed)")
    what.add_argument("--smoke", action="store_true", help="exercise every GPU path once (CUDA checks skip on a CPU)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="with --search: search seeds per row (default 3)")
    p.add_argument("--parts", type=_bench_parts, default=None, metavar="PART[,PART]",
                   help="measure only these: attack, overhead, search, trials, gpu (default: all)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="raysearch",
        description="Search efficient adversarial-training recipes (Amata, DEAT/M+, ATAS) on Ray Tune.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def experiment_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("experiment", nargs="?", default="demo",
                       help="YAML experiment file or built-in experiment name (default: demo)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set schedule=amata --set amata.k_max=10")

    p = commands.add_parser("train", help="run one adversarial training")
    experiment_args(p)
    p.add_argument("--out", default=None, help="output directory (default runs/train-<name>-<time>)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line last")

    p = commands.add_parser("search", help="search methods and schedules with Ray Tune + Optuna + ASHA")
    experiment_args(p)
    p.add_argument("--samples", type=_positive_int, help="number of trials")
    p.add_argument("--gpus-per-trial", type=_number, help="GPUs per trial; fractions share a GPU")
    p.add_argument("--cpus-per-trial", type=_number, help="CPUs per trial")
    p.add_argument("--address", help="join a running Ray cluster (e.g. auto)")
    p.add_argument("--storage", help="parent directory or cloud URI of the run directory (default runs)")
    p.add_argument("--name", help="run name (default <experiment>-<time>)")
    p.add_argument("--study-storage", metavar="URL",
                   help="the Optuna study's storage: postgresql://..., mysql://..., sqlite:///..., journal:<file> "
                        "(default: optuna.db in the run directory); with --resume, gives the password again")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search")
    p.add_argument("--time-attr", choices=["fidelity", "backprops", "epoch"], help="ASHA's time axis")

    p = commands.add_parser("confirm", help="re-train the best recipes and the paper defaults with more seeds")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory of a search (runs/<name>)")
    p.add_argument("--top", type=_count, default=None, help="recipes to confirm besides the paper defaults")
    p.add_argument("--seeds", type=_positive_int, default=None, help="seeds per recipe, the search's own run included")
    p.add_argument("--attacks", default=None, help="test-split attacks, e.g. pgd50x10 (default: the experiment's)")

    _bench_parser(commands)

    p = commands.add_parser("report", help="write report.md, pareto.png, schedules.png, trials.csv and best.yaml")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory of a search (runs/<name>)")

    p = commands.add_parser("evaluate", help="attack the best trials (or one checkpoint) on the test split")
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT",
                   help="run directory, best.pt/state.pt file, or a folder holding one")
    p.add_argument("--top", type=_positive_int, default=3,
                   help="trials of a run directory to evaluate, best first (default 3)")
    p.add_argument("--attacks", default="pgd50x10,cw20,autoattack",
                   help="comma-separated: pgdSTEPS[xRESTARTS], cwSTEPS[xRESTARTS], autoattack")
    p.add_argument("--examples", type=_positive_int, default=None, metavar="N", help="first N test examples only")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: a GPU when there is one)")
    return parser


def _train(args: argparse.Namespace) -> int:
    from raysearch.commands.train import train

    result = train(args.experiment, args.overrides, out_dir=args.out, progress=True)
    summary = result.summary
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"clean_acc={summary['clean_acc']:.4f} robust_acc={summary['robust_acc']:.4f} "
              f"backprops={summary['backprops']} train_seconds={summary['train_seconds']:.1f} "
              f"objective={summary['objective']:.4f}\nresults in {result.out_dir}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from raysearch.commands.search import search

    found = search(args.experiment, args.overrides, samples=args.samples, gpus_per_trial=args.gpus_per_trial,
                   cpus_per_trial=args.cpus_per_trial, address=args.address, storage=args.storage,
                   name=args.name, resume=args.resume, time_attr=args.time_attr, study_storage=args.study_storage)
    return INTERRUPTED if found.interrupted else 0


def _confirm(args: argparse.Namespace) -> int:
    from raysearch.commands.confirm import confirm

    confirmed = confirm(args.run_dir, top=args.top, seeds=args.seeds, attacks=args.attacks)
    return INTERRUPTED if confirmed.interrupted else 0


def _bench_parts(text: str) -> tuple[str, ...]:
    from raysearch.commands.bench import PARTS

    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"{','.join(unknown) or text!r}: choose from {', '.join(PARTS)}")
    return parts


def _bench(args: argparse.Namespace) -> int:
    if args.smoke:
        from raysearch.commands.smoke import smoke

        smoke(json_output=args.json)
        return 0
    from raysearch.commands.bench import PARTS, bench

    bench(json_output=args.json, quick=args.quick, search=args.search, seeds=range(args.seeds),
          parts=args.parts or PARTS)
    return 0


def _report(args: argparse.Namespace) -> int:
    from raysearch.commands.report import report

    report(args.run_dir)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from raysearch.commands.evaluate import evaluate

    evaluate(args.target, top=args.top, attacks=args.attacks, examples=args.examples, device=args.device)
    return 0


# name -> what runs it (each imports its command on first use, so a mistyped one answers at once)
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _train, "search": _search, "confirm": _confirm, "bench": _bench, "report": _report,
    "evaluate": _evaluate,
}


def main(argv: Sequence[str] | None = None) -> int:
    from raysearch.rundir.storage import StorageError

    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"raysearch {args.command}: error: {err}", file=sys.stderr)
        return 2
    except StorageError as err:
        print(f"raysearch {args.command}: storage error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"raysearch {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
