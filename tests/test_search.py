"""The constrained study: infeasible archs are recorded but never scored, resume keeps every trial, a
repeated arch reuses its result, a crashing trial is recorded as failed."""

import random
import time

import optuna
import pytest
from optuna.trial import TrialState

import tinynas.evaluators.train as train_evaluator
from estimators import MCU
from search_spaces import get_space
from tinynas.errors import ConfigError
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.search import Budgets, CandidateObjective, is_scored, pareto_trials, run_study, study_counts
from tinynas.storage import make_storage
from tinynas.train import TrainConfig

SPACE = get_space("mcunet", {"resolutions": [8, 16], "widths": [0.3, 0.5, 1.0], "depth_choices": [1],
                             "head_channels": 64})
MCU_ = MCU("tiny", "board", "cortex-m4f", 100, 64 * 1024, 64 * 1024, 50.0)
QUICK = TrainConfig(epochs=1, batch_size=64, optimizer="adamw", lr=0.003, max_train_samples=200)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def counted_fit(monkeypatch):
    calls = []
    real = train_evaluator.fit

    def fit(model, *a, **k):
        calls.append(model)
        return real(model, *a, **k)

    monkeypatch.setattr(train_evaluator, "fit", fit)
    return calls


def make_study(tmp_path, name="s"):
    storage, _ = make_storage(None, tmp_path)
    return optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"],
                               sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)


def trainer(digits, **options):
    return make_evaluator({"name": "train", **options}, EvaluationContext(SPACE, digits, "cpu", 0, QUICK))


def objective(digits, budgets, **kwargs):
    return CandidateObjective(SPACE, digits, MCU_, "tflm", budgets, trainer(digits), ["accuracy", "sram"], **kwargs)


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
    trained = [t for t in trials if is_scored(t) and not t.user_attrs.get("reused")]
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


def test_timeout_starts_no_trial_after_it_and_a_resumed_run_goes_on(tmp_path, digits):
    budgets = Budgets(10**9, 10**9)
    study = make_study(tmp_path)
    score = objective(digits, budgets)

    def slow(trial):  # every trial outlasts the timeout; Optuna checks the clock before each trial
        time.sleep(1.0)
        return score(trial)

    run_study(study, slow, 10, timeout_s=0.5)
    assert len(study.trials) == 1 and study.trials[0].state == optuna.trial.TrialState.COMPLETE
    run_study(study, objective(digits, budgets), 3)
    assert len(study.trials) == 3


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

    monkeypatch.setattr(train_evaluator, "fit", flaky_fit)
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


# -- constraint-aware resampling and warm starts ----------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    """Count training calls without training (these tests are about which archs run, not their accuracy)."""
    calls = []
    monkeypatch.setattr(train_evaluator, "fit", lambda model, *a, **k: calls.append(model))
    return calls


def flash_of(arch):
    from estimators import estimate

    return estimate(SPACE.to_ir(arch, 1, 10), MCU_, "tflm").flash.total_bytes


def test_over_budget_trial_enqueues_a_feasible_arch_and_keeps_its_own_params(tmp_path, digits, no_training):
    # A flash budget a quarter of the space meets.
    budget = sorted(flash_of(SPACE.random(random.Random(s))) for s in range(40))[10]
    study = make_study(tmp_path)
    obj = objective(digits, Budgets(10**9, budget), resample_attempts=20, max_trials=8)
    run_study(study, obj, 8)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8  # nothing left WAITING past the budget
    rejected = [t for t in trials if t.user_attrs.get("resampled_to")]
    assert [t for t in rejected if t.number < 7]
    for t in trials:  # every trial's Optuna params describe the arch whose figures it records
        arch = SPACE.decode(t.user_attrs["arch"])
        assert t.params == SPACE.params(arch)
        assert (flash_of(arch) > budget) == bool(t.user_attrs.get("infeasible"))
    for t in rejected:
        follow = [u for u in trials if u.user_attrs.get("resampled_from") == t.number]
        if t.number < 7:  # the next trial runs the enqueued arch, which fits and is trained
            assert len(follow) == 1 and follow[0].number == t.number + 1
            assert follow[0].user_attrs["arch_hash"] == t.user_attrs["resampled_to"]
            assert is_scored(follow[0]) and flash_of(SPACE.decode(follow[0].user_attrs["arch"])) <= budget
    assert len(no_training) == sum(is_scored(t) and not t.user_attrs.get("reused") for t in trials)


def test_resampling_gives_up_after_its_attempts_when_nothing_fits(tmp_path, digits, no_training):
    study = make_study(tmp_path)
    obj = objective(digits, Budgets(10**9, flash_of(SPACE.smallest()) - 1), resample_attempts=5)
    run_study(study, obj, 2)
    assert all(t.user_attrs["resample_attempts"] == 5 and "resampled_to" not in t.user_attrs
               for t in study.trials)
    assert len(study.trials) == 2 and not no_training


def test_warm_start_enqueues_baselines_and_files_once(tmp_path, digits, no_training):
    import json

    from tinynas.warm_start import enqueue_warm_start

    narrow, wide = (SPACE.decode({"resolution": 16, "width": w, "depths": [1] * 5, "kernels": [[3]] * 5,
                                  "expands": [[6]] * 5}) for w in (0.5, 1.0))
    budget = (flash_of(narrow) + flash_of(wide)) // 2
    budgets = Budgets(10**9, budget)
    obj = objective(digits, budgets)

    def measure(arch):
        attrs, v = obj.measure(arch)
        return all(x <= 0 for x in v.values()), attrs["macs"]

    path = tmp_path / "a.json"
    other = SPACE.random(random.Random(5))
    path.write_text(json.dumps(other.to_dict()))
    study = make_study(tmp_path)
    got = enqueue_warm_start(study, SPACE, ["mobilenetv2", str(path)], measure)
    # MobileNetV2 3×3 expand 6 at the widest width that fits the flash budget, at the highest resolution
    # (flash does not grow with resolution, MACs do).
    assert got == [narrow, other]
    run_study(study, obj, 3)
    assert [t.user_attrs["arch_hash"] for t in study.trials[:2]] == [narrow.hash, other.hash]
    assert study.trials[0].user_attrs["warm_start"] == "mobilenetv2"
    resumed = make_study(tmp_path)
    assert enqueue_warm_start(resumed, SPACE, ["mobilenetv2", str(path)], measure) == []
    run_study(resumed, obj, 5)
    assert sum("warm_start" in t.user_attrs for t in resumed.trials) == 2


def test_warm_start_names_bad_entries(tmp_path):
    from tinynas.warm_start import enqueue_warm_start

    study = make_study(tmp_path)
    with pytest.raises(ConfigError, match="'nope' is neither an arch JSON file nor a baseline; baselines: mobilenetv2"):
        enqueue_warm_start(study, SPACE, ["nope"], lambda a: (True, 0))
    with pytest.raises(ConfigError, match="missing.json: no such file"):
        enqueue_warm_start(study, SPACE, [str(tmp_path / "missing.json")], lambda a: (True, 0))
    with pytest.raises(ConfigError, match="no width and resolution"):
        enqueue_warm_start(study, SPACE, ["mobilenetv2"], lambda a: (False, 0))
    assert not study.trials and "warm_start" not in study.user_attrs


# -- storage settings and the W&B logger -------------------------------------------------------------------


def test_storage_options_reach_the_rdb_storage_and_bad_ones_are_named(tmp_path):
    from tinynas.storage import StorageOptions

    opts = StorageOptions.from_cfg({"heartbeat_interval": 5, "grace_period": 20, "max_retry": 1})
    storage, _ = make_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path, heartbeat_interval=5, grace_period=20,
                              max_retry=1)
    assert (storage.heartbeat_interval, storage.grace_period) == (opts.heartbeat_interval, opts.grace_period)
    assert storage.failed_trial_callback._max_retry == 1
    with pytest.raises(ConfigError, match="grace_period=10 must exceed heartbeat_interval=60"):
        StorageOptions.from_cfg({"grace_period": 10})
    with pytest.raises(ConfigError, match=r"storage_options: unknown \['retries'\]; allowed: heartbeat_interval"):
        StorageOptions.from_cfg({"retries": 2})


def test_wandb_logger_writes_a_trial_table_and_a_pareto_scatter(tmp_path, monkeypatch):
    """A stand-in ``wandb`` module records what the logger sends (the real one needs no test of ours)."""
    import sys
    import types

    from tinynas.loggers import TRIAL_COLUMNS, WandbLogger, trial_rows

    logged = []

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data

    class Run:
        summary = {}

        def log(self, payload):
            logged.append(payload)

    fake = types.SimpleNamespace(init=lambda **k: Run(), Table=Table, Image=lambda path: ("image", path),
                                 plot=types.SimpleNamespace(scatter=lambda t, x, y, title: ("scatter", t, x, y)))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, sram, scored in ((0.9, 2048, True), (0.5, 1024, True), (0.0, 9999, False)):
        t = study.ask()
        for k, v in {"accuracy": acc, "sram_bytes": sram, "scored": scored, "arch_hash": f"h{t.number}"}.items():
            t.set_user_attr(k, v)
        t.set_constraint("sram", -1.0 if scored else 1.0)
        study.tell(t, (acc, sram))
    study.tell(study.ask(), state=TrialState.PRUNED)
    rows = trial_rows(study.trials)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 + ["PRUNED"] and set(rows[0]) == set(TRIAL_COLUMNS)
    logger = WandbLogger(tmp_path, "p", "n", "offline", {})
    logger.log_trial(4, {"accuracy": 0.5, "arch_hash": "h4", "retry_of": 3, "arch": {}})
    assert logged[-1] == {"trial": 4, "accuracy": 0.5, "arch_hash": "h4", "retry_of": 3}  # as the console names it
    logger.log_results({"pareto": [{"trial": 0, "arch_hash": "h0", "accuracy": 0.9, "sram_bytes": 2048,
                                    "flash_bytes": 1,
                                    "latency_ms": 1.0, "energy_mj": 1.0, "macs": 1, "params": 1}]}, None, rows)
    payload = logged[-1]
    assert [r[0] for r in payload["trials"].data] == [0, 1, 2, 3]
    assert payload["pareto"].columns[:2] == ["trial", "arch_hash"] and payload["pareto"].data[0][:2] == [0, "h0"]
    assert [r[-1] for r in payload["trials"].data] == [True, False, False, False]  # the front flag
    kind, table, x, y = payload["pareto_scatter"]
    assert (kind, x, y) == ("scatter", "sram_kB", "accuracy")
    assert table.data == [[2.0, 0.9, 0, True], [1.0, 0.5, 1, False]]  # scored, complete trials only


def _running_elsewhere(study, arch):
    """A trial of ``arch`` RUNNING as if in another worker (what CandidateObjective records before evaluating)."""
    t = study.ask()
    assert SPACE.sample(t).hash == arch.hash
    t.set_user_attr("arch_hash", arch.hash)
    return t


def test_running_duplicate_waits_for_the_other_workers_result(tmp_path, digits, counted_fit):
    import threading

    study = make_study(tmp_path)
    arch = SPACE.random(random.Random(0))
    for _ in range(2):
        study.enqueue_trial(SPACE.params(arch))
    other = _running_elsewhere(study, arch)
    obj = objective(digits, Budgets(10**9, 10**9))
    obj.poll_s = 0.05
    mine = study.ask()

    def other_worker_finishes():  # once trial 1 has drawn the same arch, trial 0's worker reports its result
        while study.get_trials()[mine.number].user_attrs.get("arch_hash") != arch.hash:
            threading.Event().wait(0.02)
        for k, v in {"accuracy": 0.77, "scored": True, "evaluator": "train"}.items():
            other.set_user_attr(k, v)
        study.tell(other, (0.77, 1.0))

    helper = threading.Thread(target=other_worker_finishes)
    helper.start()
    values = obj(mine)
    helper.join()
    assert values[0] == 0.77 and len(counted_fit) == 0  # reused, not trained again
    assert study.get_trials()[mine.number].user_attrs["reused_from"] == other.number


def test_a_later_running_duplicate_is_not_waited_for(tmp_path, digits, counted_fit, monkeypatch):
    # Two workers drew the same arch at once: the lower trial number evaluates, only the higher one waits.
    study = make_study(tmp_path)
    arch = SPACE.random(random.Random(0))
    for _ in range(2):
        study.enqueue_trial(SPACE.params(arch))
    mine = study.ask()
    _running_elsewhere(study, arch)
    obj = objective(digits, Budgets(10**9, 10**9))
    monkeypatch.setattr(obj, "poll_s", None)  # time.sleep(None) raises: any wait fails the test
    obj(mine)
    assert len(counted_fit) == 1 and not study.get_trials()[mine.number].user_attrs.get("reused")
