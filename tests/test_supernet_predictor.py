"""The accuracy predictor: its arch encoding, its ridge fit against a known linear target, and, inside the
``supernet`` evaluator, its fit to held-out super-network scores."""

import dataclasses
import json
import random

import numpy as np
import pytest

from search_spaces.mcunet import MCUNetArch
from search_spaces.supernet import largest_arch
from tests.test_supernet import CFG, SPACE
from tinynas.errors import ConfigError
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.supernet import SupernetConfig
from tinynas.supernet.predictor import AccuracyPredictor, encode
from tinynas.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def distinct(n, seed, exclude=()):
    return SPACE.distinct_random(random.Random(seed), n, exclude)


def test_encoding_is_one_hot_per_choice_and_zero_for_unused_blocks():
    small, large = SPACE.smallest(), largest_arch(SPACE)
    x = encode(SPACE, [small, large])
    n_stages = len(SPACE.stages)
    # resolution, width, one depth per stage, a kernel and an expand per used block
    assert x[0].sum() == 2 + n_stages + 2 * sum(small.depths)
    assert x[1].sum() == 2 + n_stages + 2 * sum(large.depths)
    assert set(np.unique(x)) <= {0.0, 1.0}
    archs = distinct(50, 0)
    assert len({encode(SPACE, [a]).tobytes() for a in archs}) == 50  # distinct archs, distinct codes


def test_ridge_recovers_a_linear_function_of_the_encoding():
    archs = distinct(160, 1)
    x = encode(SPACE, archs)
    w = np.random.default_rng(0).normal(size=x.shape[1])
    y = x @ w + np.random.default_rng(1).normal(scale=0.1, size=len(archs))
    p = AccuracyPredictor(SPACE).fit(archs[:120], y[:120])
    rmse = np.sqrt(np.mean((p.predict(archs[120:]) - y[120:]) ** 2))
    assert rmse < 0.25 * y[120:].std() and p.loo_rmse < 0.25 * y.std()


def test_fit_refuses_too_few_or_mismatched_archs():
    with pytest.raises(ValueError, match="≥ 3 archs"):
        AccuracyPredictor(SPACE).fit(distinct(2, 0), [0.5, 0.6])
    with pytest.raises(ValueError, match="3 archs and 2 accuracies"):
        AccuracyPredictor(SPACE).fit(distinct(3, 0), [0.5, 0.6])
    with pytest.raises(ConfigError, match="predictor_archs=2 must be ≥ 3"):
        SupernetConfig.from_cfg({"predictor": True, "predictor_archs": 2})


@pytest.mark.slow  # a super-network trained on all of digits: ~30 s alone, more on a busy machine
@pytest.mark.kernel_paths
def test_predictor_fits_held_out_supernet_scores_better_than_a_constant(tmp_path, digits):
    """Fitted on 60 supernet-scored archs, the predictor's squared error on 20 other archs' supernet scores is
    below that of their training mean (measured: about 0.7 of it)."""
    ctx = EvaluationContext(SPACE, digits, "cpu", 0, TrainConfig(), run_dir=tmp_path)
    options = {f.name: getattr(CFG, f.name) for f in dataclasses.fields(CFG)}
    options.update(predictor=True, predictor_archs=60, largest_epochs=1, epochs=3, max_train_samples=None)
    ev = make_evaluator({"name": "supernet", **options}, ctx)
    ev.prepare()
    (scored,) = tmp_path.glob("supernet_*_predictor60.json")
    rows = json.loads(scored.read_text())["archs"]
    fitted_on = {MCUNetArch.from_dict(r["arch"]).hash for r in rows}
    assert len(fitted_on) == 60
    held_out = distinct(20, 99, exclude=fitted_on)
    truth = np.array([ev.supernet_accuracy(a) for a in held_out])
    predicted = np.array([ev.score(None, a)["accuracy"] for a in held_out])
    constant = np.mean([r["accuracy"] for r in rows])
    assert np.mean((predicted - truth) ** 2) < np.mean((constant - truth) ** 2), (predicted, truth)
    # A second worker reads the scored archs from the run dir instead of scoring them: same predictions.
    other = make_evaluator({"name": "supernet", **options}, ctx)
    other.prepare()
    assert [other.score(None, a)["accuracy"] for a in held_out] == predicted.tolist()
