"""The ``raysearch`` command line (SPEC §10): a thin layer over the Python functions.

Exit codes: 0 success; 2 bad input (one clear line, nothing was started); 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from trainables.registry import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raysearch",
        description="Search efficient adversarial-training recipes (Amata, DEAT/M+, ATAS) on Ray Tune.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    p.add_argument("--samples", type=int, help="number of trials")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; fractions share a GPU")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial")
    p.add_argument("--address", help="join a running Ray cluster (e.g. auto)")
    p.add_argument("--storage", help="parent directory or cloud URI of the run directory (default runs)")
    p.add_argument("--name", help="run name (default <experiment>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search")
    p.add_argument("--time-attr", choices=["backprops", "epoch"], help="ASHA's time axis")

    p = commands.add_parser("bench", help="measure attack efficiency, overheads and GPU throughput here")
    p.add_argument("--json", action="store_true", help="print all figures as one JSON object, last")
    p.add_argument("--quick", action="store_true", help="a run of seconds: small_cnn only, fewer repetitions")

    p = commands.add_parser("report", help="write report.md, pareto.png, schedules.png, trials.csv and best.yaml")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory of a search (runs/<name>)")

    p = commands.add_parser("evaluate", help="attack the best trials (or one checkpoint) on the test split")
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT",
                   help="run directory, best.pt/state.pt file, or a folder holding one")
    p.add_argument("--top", type=int, default=3, help="trials of a run directory to evaluate, best first (default 3)")
    p.add_argument("--attacks", default="pgd50x10,cw20,autoattack",
                   help="comma-separated: pgdSTEPS[xRESTARTS], cwSTEPS[xRESTARTS], autoattack")
    p.add_argument("--examples", type=int, default=None, metavar="N", help="first N test examples only")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: a GPU when there is one)")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from raysearch.train import train

        result = train(args.experiment, args.overrides, out_dir=args.out, progress=True)
        summary = result.summary
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"clean_acc={summary['clean_acc']:.4f} robust_acc={summary['robust_acc']:.4f} "
                  f"backprops={summary['backprops']} train_seconds={summary['train_seconds']:.1f} "
                  f"objective={summary['objective']:.4f}\nresults in {result.out_dir}")
        return 0
    if args.command == "search":
        from raysearch.search import search

        search(args.experiment, args.overrides, samples=args.samples, gpus_per_trial=args.gpus_per_trial,
               cpus_per_trial=args.cpus_per_trial, address=args.address, storage=args.storage,
               name=args.name, resume=args.resume, time_attr=args.time_attr)
        return 0
    if args.command == "bench":
        from raysearch.bench import bench

        bench(json_output=args.json, quick=args.quick)
        return 0
    if args.command == "report":
        from raysearch.report import report

        report(args.run_dir)
        return 0
    if args.command == "evaluate":
        from raysearch.evaluate import evaluate

        evaluate(args.target, top=args.top, attacks=args.attacks, examples=args.examples, device=args.device)
        return 0
    raise AssertionError(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as err:
        print(f"raysearch {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"raysearch {args.command}: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
