"""How ``raysearch bench`` shows its figures: rich tables and lines, each ratio next to its
target."""

from __future__ import annotations

from typing import Any


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def _header(result: dict[str, Any]) -> str:
    load = result.get("load_average") or {}
    return (f"raysearch bench on {result['device']} ({result['threads']} threads, torch {result['torch']}"
            + (f", load average {load['before']:.1f} -> {load['after']:.1f} on {load['cpus']} CPUs"
               if load else "") + ")")


def _attack_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Attack efficiency: PGD-K epoch / natural epoch")
    for column in ("model", "batch", "K", "ratio", "limit (2K+3)/3", "target 1.10x", "met"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(row["model"], f"{row['batch_size']}x{row['batches']}", str(row["k"]),
                      f"{row['ratio']:.2f}", f"{row['limit']:.2f}", f"{row['target']:.2f}", _mark(row["ok"]))
    return table


def _overhead_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Non-model overhead: share of the epoch outside forward/backward passes")
    for column in ("model", "K", "epoch s", "bare passes s", "share"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(row["model"], str(row["k"]), f"{row['epoch_seconds']:.3f}", f"{row['model_seconds']:.3f}",
                      f"{row['share']:.1%}")
    return table


def _search_lines(search: dict[str, Any]) -> list[str]:
    lines = [f"Search overhead ({search['trials']} trials of up to {search['epochs']} epochs): "
             f"{search['trial_seconds_sum']:.1f} trial s / ({search['wall_seconds']:.1f} wall s "
             f"x {search['concurrency']} slots) = {search['fraction']:.1%} of slot time in trials "
             f"(target >= {search['target']:.0%}: {_mark(search['ok'])}; start-up before Tune "
             f"{search['startup_seconds']:.1f} s included)"]
    if "in_trial_functions" in search:
        lines.append(f"  {search['in_trial_functions']:.1%} of slot time inside trial functions "
                     f"({search['trial_function_seconds_sum']:.1f} s), of which training and evaluation "
                     f"{search['trial_seconds_sum'] / max(search['trial_function_seconds_sum'], 1e-9):.1%}")
    return lines


def _gpu_table(gpu: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"{gpu['name']}: preact_resnet18 PGD-10 training")
    for column in ("setting", "images/s", "x 1 process"):
        table.add_column(column, justify="right")
    for row in gpu["precision"]:
        table.add_row(row["precision"], f"{row['images_per_second']:.0f}", "")
    for row in gpu["sharing"]:
        table.add_row(f"{row['processes']} processes", f"{row['images_per_second']:.0f}", f"{row['speedup']:.2f}")
    return table


def print_report(result: dict[str, Any], console: Any = None) -> None:
    """The benchmark as rich tables: each ratio next to its target."""
    from rich.console import Console

    console = console or Console()
    console.print(_header(result))
    if result["attack_efficiency"]:
        console.print(_attack_table(result["attack_efficiency"]))
    if result["non_model_overhead"]:
        console.print(_overhead_table(result["non_model_overhead"]))
    if result.get("search"):
        for line in _search_lines(result["search"]):
            console.print(line)
    if result.get("trial_overhead"):
        from raysearch.benchmarks.trial_overhead import trial_overhead_lines

        for line in trial_overhead_lines(result["trial_overhead"], _mark):
            console.print(line)
    if result.get("gpu"):
        console.print(_gpu_table(result["gpu"]))


__all__ = ["print_report"]
