"""The MCUNet space: encodings, sampling operators, and the IR against the PyTorch module op by op."""

import json
import random

import optuna
import pytest

from estimators.macs import total_macs, total_params
from search_spaces import get_space
from tests import space_checks as checks

SPACE = get_space("mcunet", {"resolutions": [24, 32, 48], "depth_choices": [1, 2, 3], "head_channels": 256})


@pytest.mark.parametrize("seed", range(6))
def test_ir_matches_pytorch_op_by_op(seed):
    checks.check_ir_matches_torch(SPACE, SPACE.random(random.Random(seed)), 1 + seed % 3, 10)


def test_shared_family_checks():
    checks.check_json_roundtrip(SPACE)
    checks.check_mutate_and_crossover(SPACE)
    checks.check_optuna(SPACE)
    checks.check_bounds(SPACE)


def test_json_roundtrip_and_stable_hash():
    arch = SPACE.random(random.Random(1))
    again = SPACE.decode(json.loads(arch.to_json()))
    assert again == arch and again.hash == arch.hash
    assert isinstance(hash(arch), int)
    assert arch.hash != SPACE.random(random.Random(2)).hash


def test_decode_names_the_bad_field():
    d = SPACE.random(random.Random(0)).to_dict()
    d["resolution"] = 999
    with pytest.raises(ValueError, match="resolution=999"):
        SPACE.decode(d)
    d = SPACE.random(random.Random(0)).to_dict()
    d["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        SPACE.decode(d)


def test_mutate_and_crossover_stay_in_the_space():
    rng = random.Random(0)
    a, b = SPACE.random(rng), SPACE.random(rng)
    changed = 0
    for _ in range(50):
        m = SPACE.mutate(a, rng, prob=0.3)
        SPACE.check(m)
        changed += m != a
        c = SPACE.crossover(a, b, rng)
        SPACE.check(c)
        assert c.resolution in (a.resolution, b.resolution)
    assert changed > 40
    assert SPACE.mutate(a, rng, prob=0.0) == a


def test_sample_through_optuna_matches_params():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = SPACE.sample(trial)
    assert SPACE.params(arch) == trial.params
    fixed = optuna.trial.FixedTrial(SPACE.params(arch))
    assert SPACE.sample(fixed) == arch


def test_smallest_and_largest_bound_the_space():
    small = SPACE.smallest()
    big = SPACE.largest(small)
    costs = [total_macs(SPACE.to_ir(SPACE.random(random.Random(s)), 1, 10)) for s in range(20)]
    assert total_macs(SPACE.to_ir(small, 1, 10)) <= min(costs)
    assert total_params(SPACE.to_ir(big, 1, 10)) >= max(total_params(SPACE.to_ir(SPACE.random(random.Random(s)), 1, 10))
                                                        for s in range(20))
