"""``raysearch train``: one adversarial-training run from an experiment, outside Ray.

Shows progress per epoch (a bar within the epoch when batches are slow), writes TensorBoard
scalars with the same tags as a search, saves the resolved config, the summary, the final
state and the best weights into the output directory, and returns the summary in the
``raysearch train --json`` contract shape.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainables.config import TrainConfig
from trainables.registry import ConfigError


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns: the contract summary and where the files are."""

    summary: dict[str, Any]
    out_dir: Path
    config: TrainConfig


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError("out_dir", str(path), f"is not writable ({err.strerror})") from None
    return path


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    return (f"epoch {record['epoch']:>3}/{epochs}  K={record['k']:<2} α={record['alpha'] * 255:5.2f}/255  "
            f"train_acc={record['train_acc']:.3f}  clean={record['clean_acc']:.3f}  "
            f"robust={record['robust_acc']:.3f}  backprops={record['backprops']}  "
            f"objective={record['objective']:.4f}  [{record['status']}]")


def train(
    experiment: str | os.PathLike[str] = "demo",
    overrides: Iterable[str] = (),
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    model: Any = None,
    dataset: Any = None,
) -> TrainResult:
    """Run one training of ``experiment`` (a YAML file or built-in name) with ``--set`` overrides.

    ``model``, ``dataset``: the user's own, as callables (``(num_classes, input_shape) ->
    nn.Module``, ``(root) -> dict``) or ``"pkg.module:callable"`` paths.
    Raises :class:`~trainables.registry.ConfigError` on bad input before anything starts.

    Example::

        >>> from raysearch.commands.train import train
        >>> result = train("demo", ["epochs=1", "schedule=amata"], progress=False)  # doctest: +SKIP
        >>> result.summary["backprops"], result.out_dir  # doctest: +SKIP
    """
    from raysearch._version import __version__
    from trainables.training.checkpoint import save_run
    from trainables.training.engine import start_run

    exp = _experiment(experiment, overrides, model, dataset)
    config = exp.train_config
    # Loads the data and builds the model: a missing dataset or an unknown model is a
    # ConfigError here, before any file is written or any training starts.
    run = start_run(config)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = _writable_dir(Path(out_dir) if out_dir else Path("runs") / f"train-{exp.name}-{stamp}")
    (out / "config.yaml").write_text(yaml.safe_dump(
        {"raysearch_version": __version__, "name": exp.name, **config.to_flat()}, sort_keys=False))
    _train_epochs(run, out, _Progress(progress, config.epochs, run.batches_per_epoch))
    save_run(run, out)
    summary = run.summary()
    summary["out_dir"] = str(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(summary=summary, out_dir=out, config=config)


def _experiment(experiment: str | os.PathLike[str], overrides: Iterable[str], model: Any, dataset: Any) -> Any:
    """The experiment with its overrides, the user's own model and dataset registered."""
    from raysearch.rundir.experiment import load_experiment
    from trainables.trials.setup import plugin_overrides, register_plugins

    extra, plugins = plugin_overrides(model, dataset)
    register_plugins(plugins)
    return load_experiment(Path(experiment), [*overrides, *extra])


def _train_epochs(run: Any, out: Path, console: _Progress) -> None:
    """Train ``run`` to its end: TensorBoard scalars per epoch under ``out``, progress on ``console``."""
    from torch.utils.tensorboard import SummaryWriter

    from raysearch.tuning.tensorboard import SCALARS

    writer = SummaryWriter(str(out / "tensorboard"))
    try:
        while not run.finished:
            record = run.step(on_batch=console.batch)
            for key, tag in SCALARS.items():
                if isinstance(record.get(key), (int, float)):
                    writer.add_scalar(tag, record[key], record["epoch"])
            console.epoch(record)
    finally:
        writer.close()
        console.close()


class _Progress:
    """Per-epoch lines on stderr; a transient per-batch bar on a terminal for slow epochs."""

    def __init__(self, enabled: bool, epochs: int, batches: int) -> None:
        self.enabled, self.epochs, self.batches = enabled, epochs, batches
        self.bar: Any = None
        self._start = time.perf_counter()
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total} batches"), TimeRemainingColumn(),
                                transient=True)
            self.task = self.bar.add_task("train", total=batches, epoch=1)
            self.bar.start()

    def batch(self, index: int, batches: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=index + 1)

    def epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = _epoch_line(record, self.epochs)
        if self.bar is not None:
            self.bar.console.print(line)
            self.bar.reset(self.task, total=self.batches, epoch=record["epoch"] + 1)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
