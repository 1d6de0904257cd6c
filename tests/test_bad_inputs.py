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
    assert not ray.is_initialized()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()  # nothing was started


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
