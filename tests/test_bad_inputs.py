"""Every bad input a user can give ends in one line naming what is wrong and what is allowed,
and exit code 2, before any work starts (SPEC §11). The first cases of each command live in
test_cli.py; these are the files, folders and checkpoints a user points raysearch at."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysearch.cli import main


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _files(root: Path) -> dict[str, Path]:
    """Bad files and folders, each written in the form a user could hand over."""
    files = {
        "not_utf8": b"\xff\xfe\x00epochs: 2\n",
        "bad_yaml": b"name: x\nepochs: [1\n",
        "list_yaml": b"- epochs\n- 2\n",
        "unknown_key": b"name: x\nepoch: 3\n",
        "random_pt": bytes(range(256)) * 8,
    }
    suffix = {"random_pt": ".pt"}
    out = {}
    for name, data in files.items():
        out[name] = root / (name + suffix.get(name, ".yaml"))
        out[name].write_bytes(data)
    (root / "empty").mkdir()
    out["empty"] = root / "empty"
    run = root / "run_bad_experiment"
    run.mkdir()
    (run / "experiment.yaml").write_bytes(b"\xff\xfe not yaml")
    out["run_bad_experiment"] = run
    out["missing"] = root / "missing"
    return out


CASES = [
    (["train", "{not_utf8}"], "raysearch train: error:", "is not UTF-8 text"),
    (["train", "{bad_yaml}"], "raysearch train: error:", "not valid YAML"),
    (["train", "{list_yaml}"], "raysearch train: error:", "must be a YAML mapping"),
    (["train", "{unknown_key}"], "raysearch train: error:", "did you mean 'epochs'"),
    (["train", "--set", "epochs=abc"], "raysearch train: error:", "must be a whole number"),
    (["train", "--set", "objective=target"], "raysearch train: error:", "needs a target robust accuracy"),
    (["train", "--set", "objective=target", "--set", "target_robust_acc=1.5"], "raysearch train: error:",
     "must be in (0, 1] or 'reference'"),
    (["train", "--set", "model=nosuchpkg.mod:fn"], "raysearch train: error:", "cannot import module 'nosuchpkg.mod'"),
    (["train", "--set", "dataset=imagefolder", "--set", "data_root={empty}"], "raysearch train: error:",
     "imagefolder needs train/<class>/<image>"),
    (["train", "--out", "{random_pt}/out"], "raysearch train: error:", "is not writable"),
    (["search", "{not_utf8}"], "raysearch search: error:", "is not UTF-8 text"),
    (["search", "--samples", "abc"], "raysearch search: error:", "is not a whole number"),
    (["search", "--set", "search.fidelity.epochs=[2]"], "raysearch search: error:", "a fraction in (0, 1]"),
    (["search", "--set", "search.budget=-1"], "raysearch search: error:", "search.budget=-1: must be > 0"),
    (["search", "--set", "search.confirm.attacks=xyz"], "raysearch search: error:", "search.confirm.attacks='xyz'"),
    (["search", "--storage", "{random_pt}"], "raysearch search: error:", "is not a writable directory"),
    (["search", "--resume", "{missing}"], "raysearch search: error:", "is not a raysearch run directory"),
    (["search", "--resume", "{empty}"], "raysearch search: error:", "no experiment.yaml"),
    (["search", "--resume", "{run_bad_experiment}"], "raysearch search: error:", "is not readable YAML"),
    # a numeric setting written as an expression that is not a number or a fraction
    (["train", "--set", "epsilon=8/0"], "raysearch train: error:", "epsilon='8/0': must be a number or a fraction"),
    (["train", "--set", "epsilon=8/abc"], "raysearch train: error:", "epsilon='8/abc': must be a number or a fraction"),
    (["train", "--set", "alpha=2**x"], "raysearch train: error:", "alpha='2**x': must be a number or a fraction"),
    (["train", "--set", "k=3/0"], "raysearch train: error:", "k='3/0': must be a whole number"),
    (["train", "--set", "schedule=amata", "--set", "amata.eta=1/0"], "raysearch train: error:", "amata.eta='1/0'"),
    (["search", "--set", "epsilon=8/0"], "raysearch search: error:", "epsilon='8/0': must be a number or a fraction"),
    (["search", "--set", "alpha=2**x"], "raysearch search: error:", "alpha='2**x': must be a number or a fraction"),
    (["search", "--set", "search.gpus_per_trial=8/0"], "raysearch search: error:",
     "search.gpus_per_trial='8/0': must be a number"),
    # a device this machine (a CPU-only test box) does not have, or no device at all
    (["train", "--set", "device=tpu"], "raysearch train: error:", "device='tpu': must be auto, cpu, cuda, cuda:N or mps"),
    (["search", "--set", "device=tpu"], "raysearch search: error:", "device='tpu': must be auto, cpu, cuda, cuda:N"),
    # more values that once ended in a traceback from torch
    (["train", "--set", "momentum=-1"], "raysearch train: error:", "momentum=-1.0: must be >= 0"),
    (["train", "--set", "seed=1e30"], "raysearch train: error:", "must be a whole number in [-2**63, 2**64)"),
    (["train", "--set", "eval.examples=-5"], "raysearch train: error:", "eval.examples=-5: must be >= 1"),
    (["train", "--set", "schedule=amata", "--set", "amata.shape=wobbly"], "raysearch train: error:",
     "amata.shape='wobbly': choose one of linear, exp, cosine, step"),
    (["evaluate", "{missing}"], "raysearch evaluate: error:", "no such run directory or checkpoint"),
    (["evaluate", "{empty}"], "raysearch evaluate: error:", "holds no best.pt or state.pt"),
    (["evaluate", "{random_pt}"], "raysearch evaluate: error:", "has no training config beside it"),
    (["evaluate", "{empty}", "--attacks", "bogus"], "raysearch evaluate: error:", "attacks='bogus'"),
    (["evaluate"], "raysearch evaluate: error:", "arguments are required"),
    (["report", "{missing}"], "raysearch report: error:", "is not a directory"),
    (["report", "{random_pt}"], "raysearch report: error:", "is not a directory"),
    (["report", "{empty}"], "raysearch report: error:", "holds no trials"),
    (["confirm", "{empty}"], "raysearch confirm: error:", "holds no trials"),
    (["confirm", "{empty}", "--top", "-1"], "raysearch confirm: error:", "must be >= 0"),
    (["confirm", "{empty}", "--seeds", "0"], "raysearch confirm: error:", "must be >= 1"),
    (["bench", "--search", "--smoke"], "raysearch bench: error:", "not allowed with argument --search"),
    (["bench", "--seeds", "0"], "raysearch bench: error:", "must be >= 1"),
    (["nosuchcmd"], "raysearch: error:", "invalid choice: 'nosuchcmd'"),
    (["train", "--nosuchflag"], "raysearch: error:", "unrecognized arguments: --nosuchflag"),
]


@pytest.mark.parametrize(("args", "prefix", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(args: list[str], prefix: str, expected: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.chdir(tmp_path)  # a default --out/--storage lands here, if anything were started
    files = _files(tmp_path)
    assert _exit_code([arg.format(**files) for arg in args]) == 2
    line = _one_line(capsys)
    assert line.startswith(prefix) and expected in line, line
    assert "Traceback" not in line
    assert not ray.is_initialized()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()  # nothing was started


def _no_cuda(monkeypatch: pytest.MonkeyPatch, gpus: int = 0) -> None:
    """This machine as torch sees it: ``gpus`` CUDA GPUs (0: a CPU-only box)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


DEVICE_CASES = [
    (0, ["train", "--set", "device=cuda"], "device='cuda': this machine has no CUDA GPU; use auto or cpu"),
    (0, ["train", "--set", "device=cuda:3"], "device='cuda:3': this machine has no CUDA GPU"),
    (2, ["train", "--set", "device=cuda:3"], "device='cuda:3': this machine has 2 CUDA GPUs (cuda:0 ... cuda:1)"),
    (0, ["search", "--set", "device=cuda"], "device='cuda': the trials get no GPU"),
    (0, ["search", "--set", "device=cuda:3", "--gpus-per-trial", "1"], "device='cuda:3': the trials get no GPU"),
    (1, ["search", "--set", "device=cuda:1", "--gpus-per-trial", "0.5"],
     "device='cuda:1': each trial sees only the 1 GPU(s) Ray gives it"),
    (0, ["search", "--set", "device=mps"], "device='mps': a search's trials train on the CUDA GPUs Ray gives them"),
    (0, ["evaluate", "{empty}", "--device", "cuda:1"], "device='cuda:1': this machine has no CUDA GPU"),
]


@pytest.mark.parametrize(("gpus", "args", "expected"), DEVICE_CASES, ids=[" ".join(c[1]) for c in DEVICE_CASES])
def test_a_device_this_machine_does_not_have_is_one_line_and_exit_2(
        gpus: int, args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.chdir(tmp_path)
    _no_cuda(monkeypatch, gpus)
    files = _files(tmp_path)
    assert _exit_code([arg.format(**files) for arg in args]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"raysearch {args[0]}: error: ") and expected in line, line
    assert "Traceback" not in line
    assert not ray.is_initialized()
    assert not any((tmp_path / "runs").glob("*"))  # resources are checked once storage is: no run directory


def test_mps_on_a_machine_without_it_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert _exit_code(["train", "--set", "device=mps"]) == 2
    assert _one_line(capsys) == ("raysearch train: error: device='mps': this machine has no MPS device "
                                 "(Apple silicon GPU); use auto or cpu")
    assert not (tmp_path / "runs").exists()


def _exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exit_:  # argparse's own errors (the usage line, our one-line form)
        return int(exit_.code or 0)


@pytest.mark.parametrize("damage", ["truncated", "not_torch", "wrong_content"])
def test_a_damaged_checkpoint_beside_its_config_is_one_line_and_exit_2(damage: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from raysearch.commands.train import train

    out = tmp_path / "out"
    train("demo", ["epochs=1", "eval.examples=20", "max_batches=2", "method=fgsm_rs"], out_dir=out, progress=False)
    capsys.readouterr()
    best = out / "best.pt"
    if damage == "truncated":
        best.write_bytes(best.read_bytes()[:100])
    elif damage == "not_torch":
        best.write_text("these are not weights")
    else:
        torch.save({"something": "else"}, best)
    assert _exit_code(["evaluate", str(best), "--attacks", "pgd5", "--examples", "10"]) == 2
    line = _one_line(capsys)
    assert line.startswith("raysearch evaluate: error:") and str(best) in line, line
