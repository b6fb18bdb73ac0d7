"""The default experiment end to end at a tiny budget: results.json contract, the .tflite re-run in the TFLite
Micro interpreter, the C files, and resume. Slow (minutes): run by `make test` / CI."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_runner

pytestmark = pytest.mark.slow

# distill.max_train_samples: the teacher (the space's largest arch), the student and its no-KD baseline train on
# 1,000 of the 3,500 training digits, 2.5x faster; the student still reaches ~0.75 (the test asks > 0.3).
TINY = ["logger=none", "n_trials=4", "train.max_train_samples=300", "train.epochs=1", "distill.teacher.epochs=1",
        "distill.student_epochs=2", "distill.max_train_samples=1000", "export.calibration_samples=64"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tinynas = cli_runner(tmp_path_factory.mktemp("e2e"))

    def search(*extra):
        return tinynas("search", *TINY, *extra, timeout=1500)

    first = search()
    assert first.returncode == 0, first.stderr[-4000:]
    return search, first, Path(first.stdout.strip().splitlines()[-1])


def test_last_line_is_results_json_and_it_follows_the_contract(run):
    _, _, results_path = run
    assert results_path.name == "results.json" and results_path.is_file()
    r = json.loads(results_path.read_text())
    assert set(r) == {"experiment", "mcu", "runtime", "budgets", "study", "pareto", "deployed"}
    assert r["experiment"] == "mnist" and r["mcu"] == "stm32f446" and r["runtime"] == "tflm"
    assert r["budgets"] == {"sram_bytes": 128 * 1024, "flash_bytes": 512 * 1024, "latency_ms": None}
    s = r["study"]
    assert set(s) == {"name", "storage", "n_trials", "n_complete", "n_infeasible", "n_pruned", "n_failed",
                      "n_retried"}
    assert s["n_trials"] == 4 and s["storage"].startswith("journal:///")
    assert r["pareto"], "at least one feasible trained candidate"
    for p in r["pareto"]:
        assert set(p) == {"trial", "arch_hash", "arch", "accuracy", "sram_bytes", "flash_bytes", "latency_ms",
                          "energy_mj", "macs", "params"}
        assert 0 <= p["accuracy"] <= 1
        assert p["sram_bytes"] <= r["budgets"]["sram_bytes"] and p["flash_bytes"] <= r["budgets"]["flash_bytes"]
    d = r["deployed"]
    assert set(d) == {"trial", "arch_hash", "arch", "tflite", "c_source", "tflite_bytes", "tflm_arena_bytes",
                      "estimated_sram_bytes", "estimated_flash_bytes", "target_sram_bytes", "target_flash_bytes",
                      "teacher_accuracy", "fp32_accuracy", "int8_accuracy", "student_no_kd_accuracy",
                      "student_kd_accuracy", "pruning", "qat", "model_fingerprints", "test_samples", "target"}
    assert d["trial"] in [p["trial"] for p in r["pareto"]]
    fp = d["model_fingerprints"]  # four accuracies, measured on three models: the export is the KD student
    assert len({fp["teacher"], fp["student_no_kd"], fp["student_kd"]}) == 3 and fp["exported"] == fp["student_kd"]
    assert d["test_samples"] > 0
    for k in ("teacher_accuracy", "fp32_accuracy", "int8_accuracy"):
        assert 0 <= d[k] <= 1
    run_dir = results_path.parent
    for f in ("pareto.csv", "pareto.png", "summary.md", d["tflite"], d["c_source"]):
        assert (run_dir / f).is_file(), f
    assert not Path(d["tflite"]).is_absolute()


def test_firmware_is_recorded_when_a_tflm_tree_is_configured(run):
    """deployed.target: the firmware report (tinynas/target) when TINYNAS_TFLM_ROOT is set (.ci/run sets it),
    paths relative to the run dir; null otherwise, and summary.md says how to turn it on."""
    import os

    _, _, results_path = run
    d = json.loads(results_path.read_text())["deployed"]
    summary = (results_path.parent / "summary.md").read_text()
    if not os.environ.get("TINYNAS_TFLM_ROOT"):
        assert d["target"] is None and "Firmware: not built (no TFLite Micro tree configured" in summary
        return
    t = d["target"]
    assert "error" not in t, t
    assert (results_path.parent / t["elf"]).is_file() and t["model"] == d["tflite"]
    assert t["outputs_match_interpreter"] is True and t["arena"]["head"] == t["estimate"]["sram_head_bytes"]
    assert f"{t['instructions']:,} instructions per inference" in summary


def test_tflite_runs_in_tflm_and_matches_the_recorded_figures(run):
    from tinynas.tflm import measure_arena, run_tflm

    _, _, results_path = run
    r = json.loads(results_path.read_text())
    d = r["deployed"]
    tflite = results_path.parent / d["tflite"]
    assert tflite.stat().st_size == d["tflite_bytes"]
    assert measure_arena(tflite).total_bytes == d["tflm_arena_bytes"]
    res = d["arch"]["resolution"]
    out = run_tflm(tflite, np.zeros((2, res, res, 1), dtype=np.int8))
    assert out.shape == (2, 10) and out.dtype == np.int8
    # The estimators' promises for exactly what was measured: arena within 2%, file within 2%.
    assert abs(d["estimated_sram_bytes"] / d["tflm_arena_bytes"] - 1) < 0.02
    assert abs(d["estimated_flash_bytes"] / d["tflite_bytes"] - 1) < 0.02
    # The firmware source holds exactly the model's bytes.
    cc = (results_path.parent / d["c_source"]).read_text()
    assert str(d["tflite_bytes"]) in cc


def test_int8_accuracy_tracks_fp32(run):
    _, _, results_path = run
    d = json.loads(results_path.read_text())["deployed"]
    assert d["fp32_accuracy"] > 0.3  # trained, even at this tiny budget (chance is 0.1)
    assert abs(d["int8_accuracy"] - d["fp32_accuracy"]) < 0.05


def test_same_command_resumes_instead_of_starting_over(run):
    search, first, results_path = run
    again = search("deploy=false", "n_trials=5")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming study" in again.stderr and "4/5" in again.stderr
    r = json.loads(results_path.read_text())
    assert r["study"]["n_trials"] == 5
