"""``raysearch bench --smoke`` on the CPU: every GPU path's CPU twin runs and gives its figures
(the CUDA-only checks say skipped); on a GPU machine the same command measures them there."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_every_smoke_part_runs_on_the_cpu_and_reports_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    from raysearch.commands.smoke import PARTS, smoke

    out = smoke(device="cpu")
    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if "FAILED" in line], lines
    assert set(PARTS) <= set(out) and out["device"] == "cpu"
    assert {"cudnn_allow_tf32", "matmul_allow_tf32", "mps_daemon"} <= set(out["state"])
    # the small CNN on the CPU: auto and fp32 (bf16 off) with and without channels_last (off: a CPU)
    assert len(out["layouts"]) == 2 and all(s > 0 for s in out["layouts"].values())
    assert out["syncs"] == {} and any("syncs: skipped (needs CUDA" in line for line in lines)
    precision = out["precision"]
    assert 0.5 < precision["ce_sign_agreement"] <= 1 and 0.8 < precision["ce_cosine"] <= 1
    assert 0 <= precision["robust_fp32"] <= 1
    memory = out["memory"]
    assert memory["released_without_gc"] == 1.0 and memory["estimate_total_mib"] > memory["estimate_allocated_mib"] > 0
    assert out["compile"]["compile=False"]["compile_seconds"] == 0
    assert out["compile"]["compile=True"]["compile_seconds"] > 0
    assert out["ddp"]["backend"] == "gloo" and 0 <= out["ddp"]["robust_acc"] <= 1
    ray = out["ray"]
    assert [status for status, _ in ray["trials"]] == ["completed"] * 4
    assert ray["probes"] == [("", False, "cpu")]  # a trial that asked for no GPU sees none
    assert out["bench"]["attack_efficiency"] and all(row["ratio"] > 1 for row in out["bench"]["attack_efficiency"])
