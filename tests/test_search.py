"""The constrained study: infeasible archs are recorded but never trained, resume keeps every trial, a
repeated arch reuses its result, a crashing trial is recorded as failed."""

import random

import optuna
import pytest
from optuna.trial import TrialState

import tinynas.search as search
from estimators import MCU
from search_spaces import get_space
from tinynas.data import load_dataset
from tinynas.errors import ConfigError
from tinynas.search import Budgets, CandidateObjective, pareto_trials, run_study, study_counts
from tinynas.storage import make_storage
from tinynas.train import TrainConfig

SPACE = get_space("mcunet", {"resolutions": [8, 16], "widths": [0.3, 0.5, 1.0], "depth_choices": [1],
                             "head_channels": 64})
MCU_ = MCU("tiny", "board", "cortex-m4f", 100, 64 * 1024, 64 * 1024, 50.0)
DIGITS = {"name": "digits", "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}
QUICK = TrainConfig(epochs=1, batch_size=64, optimizer="adamw", lr=0.003, max_train_samples=200)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DIGITS)


@pytest.fixture
def counted_fit(monkeypatch):
    calls = []
    real = search.fit

    def fit(model, *a, **k):
        calls.append(model)
        return real(model, *a, **k)

    monkeypatch.setattr(search, "fit", fit)
    return calls


def make_study(tmp_path, name="s"):
    storage, _ = make_storage(None, tmp_path)
    return optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"],
                               sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)


def objective(digits, budgets):
    return CandidateObjective(SPACE, digits, MCU_, "tflm", budgets, QUICK, "cpu", ["accuracy", "sram"])


def test_infeasible_candidates_are_recorded_and_never_trained(tmp_path, digits, counted_fit):
    # A flash budget between the smallest and the largest arch: some candidates must be rejected.
    from estimators import estimate

    flash = [estimate(SPACE.to_ir(SPACE.random(random.Random(s)), 1, 10), MCU_, "tflm").flash.total_bytes
             for s in range(30)]
    budgets = Budgets(sram_bytes=10**9, flash_bytes=int(sorted(flash)[len(flash) // 2]))
    study = make_study(tmp_path)
    run_study(study, objective(digits, budgets), 10)
    trials = study.get_trials()
    infeasible = [t for t in trials if t.user_attrs.get("infeasible")]
    trained = [t for t in trials if t.user_attrs.get("trained") and not t.user_attrs.get("reused")]
    assert infeasible and trained
    assert len(counted_fit) == len(trained)
    for t in infeasible:
        assert t.constraints["flash"] > 0 and t.user_attrs["flash_bytes"] > budgets.flash_bytes
    for t in pareto_trials(study):
        assert t.user_attrs["flash_bytes"] <= budgets.flash_bytes
    counts = study_counts(study)
    assert counts["n_trials"] == 10 and counts["n_infeasible"] == len(infeasible)


def test_resume_runs_only_the_missing_trials(tmp_path, digits):
    budgets = Budgets(10**9, 10**9)
    run_study(make_study(tmp_path), objective(digits, budgets), 3)
    study = make_study(tmp_path)  # same storage and name: loads the study
    assert len(study.trials) == 3
    run_study(study, objective(digits, budgets), 5)
    assert len(study.trials) == 5
    run_study(study, objective(digits, budgets), 5)
    assert len(study.trials) == 5


def test_repeated_arch_reuses_its_result(tmp_path, digits, counted_fit):
    study = make_study(tmp_path)
    arch = SPACE.random(random.Random(0))
    for _ in range(2):
        study.enqueue_trial(SPACE.params(arch))
    run_study(study, objective(digits, Budgets(10**9, 10**9)), 2)
    a, b = study.trials
    assert a.user_attrs["arch_hash"] == b.user_attrs["arch_hash"]
    assert b.user_attrs.get("reused") and b.values[0] == a.values[0]
    assert len(counted_fit) == 1


def test_crashing_trial_is_failed_with_reason_and_the_study_goes_on(tmp_path, digits, monkeypatch):
    calls = {"n": 0}

    def flaky_fit(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise FloatingPointError("training diverged: loss is nan")

    monkeypatch.setattr(search, "fit", flaky_fit)
    study = make_study(tmp_path)
    run_study(study, objective(digits, Budgets(10**9, 10**9)), 3)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 1 and len(states) == 3
    failed = next(t for t in study.trials if t.state == TrialState.FAIL)
    assert "loss is nan" in failed.user_attrs["fail_reason"]


def test_budgets_and_storage_errors_name_the_value(tmp_path):
    host = MCU("host", "x", "x86_64", 0, 0, 0, 0.0, pointer_bytes=8)
    with pytest.raises(ConfigError, match="mcu=host has no SRAM/flash budget"):
        Budgets.resolve({}, host)
    with pytest.raises(ConfigError, match="latency_ms=-1"):
        Budgets.resolve({"latency_ms": -1}, MCU_)
    with pytest.raises(ConfigError, match="not a storage URL"):
        make_storage("studies.db", tmp_path)
    with pytest.raises(ConfigError, match="cannot write the journal file"):
        make_storage("journal:///dev/null/x/study.log", tmp_path)
