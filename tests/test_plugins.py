"""Your own model and data: a package written by the test into a temporary directory, named by
import path in every command (train, a search through Ray workers, evaluate, report), the
callables given to the Python API, and a schedule added through the registry alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainables.config import parse_config
from trainables.labels import describe
from trainables.methods import Plan
from trainables.registry import ConfigError
from trainables.schedules import SCHEDULES, Schedule, ScheduleSetup, ScheduleSpec

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = {
    "mypkg/__init__.py": "",
    "mypkg/nets.py": """
        import torch
        from torch import nn

        def make_net(num_classes, input_shape):
            c, h, w = input_shape
            return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 32), nn.ReLU(), nn.Linear(32, num_classes))
        """,
    "mypkg/data.py": """
        import torch
        from torch.utils.data import TensorDataset

        def load(root):
            g = torch.Generator().manual_seed(0)
            y = torch.randint(0, 3, (240,), generator=g)
            # class c is brighter in column c: learnable, and images stay in [0, 1]
            x = torch.rand(240, 1, 6, 6, generator=g) * 0.5
            for c in range(3):
                x[y == c, :, :, 2 * c:2 * c + 2] += 0.5
            train = TensorDataset(x[:200], y[:200])
            test = TensorDataset(x[200:], y[200:])
            return {"train": train, "test": test, "num_classes": 3}
        """,
}
KEYS = ["model=mypkg.nets:make_net", "dataset=mypkg.data:load", "epochs=2", "batch_size=50", "epsilon=0.05",
        "eval.examples=20"]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("user")
    for name, text in PACKAGE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _env(package: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": f"{package}{os.pathsep}{ROOT}"}


def test_train_by_import_path_from_the_command_line(package: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "raysearch", "train", *[a for k in KEYS for a in ("--set", k)],
                          "--json", "--out", str(tmp_path / "t")], cwd=tmp_path, env=_env(package),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 2 and summary["batches_per_epoch"] == 4  # 180 train examples / 50 (20 held out)
    assert 0.0 <= summary["robust_acc"] <= summary["clean_acc"] <= 1.0


def test_a_bad_import_path_is_one_line_and_exit_2(package: Path, tmp_path: Path) -> None:
    for key, hint in (("model=mypkg.nets:make_nett", "has no attribute 'make_nett'"),
                      ("dataset=nopkg.data:load", "cannot import module 'nopkg.data'")):
        out = subprocess.run([sys.executable, "-m", "raysearch", "train", "--set", key, "--set", "epochs=1"],
                             cwd=tmp_path, env=_env(package), capture_output=True, text=True)
        assert out.returncode == 2
        assert len(out.stderr.strip().splitlines()) == 1 and hint in out.stderr, out.stderr


@pytest.mark.slow
def test_search_evaluate_and_report_with_the_users_package(package: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from raysearch.commands.evaluate import evaluate
    from raysearch.commands.report import report
    from raysearch.commands.search import search

    monkeypatch.syspath_prepend(str(package))
    monkeypatch.setenv("PYTHONPATH", f"{package}")  # Ray's workers inherit it: they import mypkg too
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # its workers get our env
    try:
        result = search("demo", [*KEYS, "search.space=baselines", "search.time_attr=backprops",
                                 "search.warm_start=false", "search.confirm.top=0", "search.scheduler=none"],
                        samples=2, storage=str(tmp_path), name="mine", progress=False)
    finally:
        ray.shutdown()
    assert len(result.trials) == 2 and all(t.status.value == "completed" for t in result.trials)
    assert all(t.config["model"] == "mypkg.nets:make_net" for t in result.trials)
    evaluated = evaluate(result.run_dir, top=1, attacks="pgd5", progress=False)
    assert 0.0 <= evaluated.rows[0]["pgd5"] <= evaluated.rows[0]["clean"]
    written = report(result.run_dir, progress=False)
    assert (Path(result.run_dir) / "best.yaml").read_text().count("mypkg.nets:make_net") == 1
    assert written.best is not None


def test_callables_given_to_the_python_api(package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from raysearch.commands.train import train

    monkeypatch.syspath_prepend(str(package))
    from mypkg.data import load
    from mypkg.nets import make_net

    result = train("demo", ["epochs=1", "batch_size=50", "epsilon=0.05", "eval.examples=20"],
                   out_dir=tmp_path / "api", progress=False, model=make_net, dataset=load)
    assert result.config.model == "mypkg.nets:make_net" and result.config.dataset == "mypkg.data:load"
    assert result.summary["batches_per_epoch"] == 4


# ---------------------------------------------------------------------------- one registry line


@dataclass(frozen=True)
class ToyConfig:
    """K alternates between ``low`` and ``high`` epoch by epoch."""

    low: int = 1
    high: int = 3


class Toy(Schedule):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def plan(self, epoch: int) -> Plan:
        return Plan(self.low if epoch % 2 == 0 else self.high)


def test_a_schedule_added_through_the_registry_alone_is_configured_and_labelled() -> None:
    SCHEDULES["toy"] = ScheduleSpec(build=lambda s: Toy(s.options.low, s.options.high),
                                    describe=lambda s: f"toy {s.options.low}/{s.options.high}", options=ToyConfig)
    try:
        cfg = parse_config({"schedule": "toy", "toy.high": 5, "epochs": 4})
        assert cfg.toy == ToyConfig(1, 5)
        assert describe({"schedule": "toy", "toy.high": 5}) == "PGD, toy 1/5"
        from trainables.training.run_parts import make_schedule

        assert [make_schedule(cfg).plan(t).k for t in range(4)] == [1, 5, 1, 5]
        with pytest.raises(ConfigError, match="did you mean 'toy.high'"):
            parse_config({"schedule": "toy", "toy.hihg": 5})
    finally:
        del SCHEDULES["toy"]
    with pytest.raises(ConfigError, match="choose one of"):
        parse_config({"schedule": "toy"})
    assert isinstance(ScheduleSetup, type)
