"""evaluator=train: successive halving's rungs and promotion rule, a study where the stopped trials are exactly
those the ASHA rule names (recomputed from the recorded rung accuracies), PRUNED trials kept off the front, a
surviving trial's accuracy unchanged by the rungs; the evaluator= config group and its errors."""

import json

import optuna
import pytest
from optuna.trial import TrialState

from estimators import MCU
from search_spaces import get_space
from tinynas.errors import ConfigError
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.evaluators.train import RUNG_ATTR, promotable, rungs
from tinynas.search import Budgets, CandidateObjective, pareto_trials, run_study, study_counts
from tinynas.storage import make_storage
from tinynas.train import TrainConfig

SPACE = get_space("mcunet", {"resolutions": [8], "widths": [0.3, 0.5], "depth_choices": [1], "head_channels": 32})
MCU_ = MCU("tiny", "board", "cortex-m4f", 100, 64 * 1024, 64 * 1024, 50.0)
QUICK = TrainConfig(epochs=2, batch_size=50, optimizer="adamw", lr=0.003, max_train_samples=100)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def study_with(tmp_path, digits, n, name="s", **options):
    storage, _ = make_storage(None, tmp_path)
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)
    ev = make_evaluator({"name": "train", **options}, EvaluationContext(SPACE, digits, "cpu", 0, QUICK))
    run_study(study, CandidateObjective(SPACE, digits, MCU_, "tflm", Budgets(10**9, 10**9), ev,
                                        ["accuracy", "sram"]), n)
    return study


def test_rungs_and_the_promotion_rule():
    assert rungs(1, 3, 9) == [1, 3] and rungs(1, 2, 8) == [1, 2, 4] and rungs(2, 2, 2) == [] and rungs(1, 3, 2) == [1]
    # Best max(1, n // η) of n go on; the first trials at a rung go on only if they are the best so far.
    assert promotable(0.5, [0.5], 3)
    assert not promotable(0.4, [0.5, 0.4], 3) and promotable(0.5, [0.5, 0.4], 3)
    assert promotable(0.8, [0.9, 0.8, 0.1, 0.2, 0.3, 0.4], 3) and not promotable(0.4, [0.9, 0.8, 0.4, 0.3, 0.2, 0.1], 3)


def test_successive_halving_stops_exactly_the_trials_the_rule_names(tmp_path, digits):
    study = study_with(tmp_path, digits, 5, successive_halving=True, min_epochs=1, reduction_factor=2)
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    fresh = [t for t in trials if not t.user_attrs.get("reused")]
    for t in fresh:  # one worker: the competitors at rung 1 are the earlier fresh trials and the trial itself
        acc = t.user_attrs[RUNG_ATTR]["1"]
        field = [u.user_attrs[RUNG_ATTR]["1"] for u in fresh if u.number <= t.number]
        keep = max(1, len(field) // 2)
        assert (t.state == TrialState.COMPLETE) == (acc >= sorted(field, reverse=True)[keep - 1]), t.number
    assert pruned and complete
    for t in pruned:
        assert t.values is None and t.user_attrs["stopped_at_epoch"] == 1 and not t.user_attrs["scored"]
        assert t.user_attrs["sram_bytes"] > 0 and t.user_attrs["arch_hash"]  # its figures are kept
    for t in complete:
        if not t.user_attrs.get("reused"):
            assert t.user_attrs["epochs"] == 2 and set(t.user_attrs[RUNG_ATTR]) == {"1"}
    assert study_counts(study)["n_pruned"] == len(pruned)
    assert {t.number for t in pareto_trials(study)} <= {t.number for t in complete}


def test_a_trial_that_passes_every_rung_ends_as_without_rungs(tmp_path, digits):
    # Trial 0 is alone at its rung, so it always goes on; the rung's measurement must not change its training.
    plain = study_with(tmp_path / "a", digits, 1)
    halving = study_with(tmp_path / "b", digits, 1, successive_halving=True, min_epochs=1, reduction_factor=3)
    assert halving.trials[0].state == TrialState.COMPLETE
    assert halving.trials[0].values == plain.trials[0].values
    assert RUNG_ATTR in halving.trials[0].user_attrs and RUNG_ATTR not in plain.trials[0].user_attrs


def test_train_evaluator_options_are_checked(digits):
    ctx = EvaluationContext(SPACE, digits, "cpu", 0, QUICK)
    with pytest.raises(ConfigError, match=r"evaluator=train: unknown options \['eta'\]"):
        make_evaluator({"name": "train", "eta": 3}, ctx)
    with pytest.raises(ConfigError, match="reduction_factor=1 must be an integer ≥ 2"):
        make_evaluator({"name": "train", "successive_halving": True, "reduction_factor": 1}, ctx)
    with pytest.raises(ConfigError, match="min_epochs=5 must be between 1 and max_epochs=2"):
        make_evaluator({"name": "train", "successive_halving": True, "min_epochs": 5}, ctx)
    with pytest.raises(ConfigError, match="evaluator='oracle' is unknown; allowed: .*train.*zero_cost"):
        make_evaluator({"name": "oracle"}, ctx)
    assert make_evaluator({"name": "train", "max_epochs": 5}, ctx).train_cfg.epochs == 5


def test_evaluator_group_composes_with_defaults():
    from tests.test_config import compose_cfg

    cfg = compose_cfg("search")
    assert cfg.evaluator.name == "train" and cfg.evaluator.successive_halving is False
    assert cfg.storage_options.max_retry == 3
    assert compose_cfg("search", ["evaluator=zero_cost"]).evaluator.proxy == "naswot"


@pytest.mark.slow
def test_search_cli_with_zero_cost_then_resume_with_another_evaluator(tinynas_cli, tmp_path):
    journal = f"journal://{tmp_path / 'z.journal'}"
    tiny = ["deploy=false", "logger=none", "dataset=digits", "search=random", "search_space.options.resolutions=[8]",
            "search_space.options.widths=[0.3,0.5]", "search_space.options.depth_choices=[1]",
            "search_space.options.head_channels=32", f"storage={journal}", "study_name=z"]
    p = tinynas_cli("search", *tiny, "n_trials=3", "evaluator=zero_cost", "evaluator.proxy=params",
                    "storage_options.max_retry=1")
    assert p.returncode == 0, p.stderr
    results = json.loads(open(p.stdout.strip().splitlines()[-1]).read())
    assert results["study"]["n_trials"] == 3 and results["pareto"]
    assert all(r["accuracy"] == r["params"] for r in results["pareto"])  # the proxy is the accuracy objective
    p = tinynas_cli("search", *tiny, "n_trials=4", "evaluator=train")
    assert p.returncode == 2 and "was scored with evaluator=zero_cost, not evaluator=train" in p.stderr, p.stderr


@pytest.mark.parametrize("options", [{"name": "train"}, {"name": "zero_cost", "proxy": "naswot", "batch_size": 8},
                                     {"name": "zero_cost", "proxy": "synflow"}])
def test_evaluators_score_a_dscnn_arch_on_fixed_size_features(options):
    """DS-CNN archs have no resolution: the data are used at the space's input size (49×10 MFCC frames, which
    are fixed-size features and never resized)."""
    import numpy as np

    from tinynas.data import Dataset, Split

    rng = np.random.default_rng(0)

    def split(n):
        return Split(rng.standard_normal((n, 1, 49, 10)).astype(np.float32), rng.integers(0, 3, n), fixed=True)

    data = Dataset("mfcc", split(40), split(12), split(12), num_classes=3, mean=0.0, std=1.0)
    space = get_space("dscnn", {"first_channel_choices": [8], "channel_choices": [8], "depth_choices": [1]})
    arch = space.smallest()
    tiny = TrainConfig(epochs=1, batch_size=20, optimizer="adamw", lr=0.003)
    ev = make_evaluator(options, EvaluationContext(space, data, "cpu", 0, tiny))
    trial = optuna.create_study().ask()
    assert isinstance(ev.score(trial, arch)["accuracy"], float)
