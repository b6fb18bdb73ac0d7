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


# Options that express MCUNet's released nets: a stage keeping its predecessor's channels, no feature mix,
# shortcuts only inside a stage (ProxylessNAS), a wider expand list.
ZOO_LIKE = get_space("mcunet", {"resolutions": [24, 32], "widths": [1.0], "depth_choices": [1, 2],
                                "expand_choices": [3, 5], "stages": [[8, 2], [8, 1], [16, 2]], "stem_channels": 8,
                                "first_block_channels": 8, "head_channels": 0, "shortcut": "within_stage"})


def _adds(graph) -> list[int]:
    """Indices of the blocks whose IR has an identity-shortcut ADD."""
    return sorted(int(op.outputs[0].split("/")[0][5:]) for op in graph.ops if op.kind == "ADD")


@pytest.mark.parametrize("seed", range(3))
def test_zoo_options_ir_matches_pytorch(seed):
    arch = ZOO_LIKE.random(random.Random(seed))
    checks.check_ir_matches_torch(ZOO_LIKE, arch, 3, 10)
    graph = ZOO_LIKE.to_ir(arch, 3, 10)
    assert not any(op.outputs[0].startswith("head") for op in graph.ops)  # no feature mix
    model = ZOO_LIKE.build_torch(arch, 3, 10)
    assert [i for i, b in enumerate(model.blocks) if b.residual] == _adds(graph)
    # Every block after the first of its stage has a shortcut; the first blocks (8 → 8 at stride 1 too) none.
    firsts = {0} | {1 + sum(arch.depths[:s]) for s in range(len(arch.depths))}
    assert _adds(graph) == [i for i in range(1 + sum(arch.depths)) if i not in firsts]
    same_shape = get_space("mcunet", {**_options(ZOO_LIKE), "shortcut": "same_shape"})
    assert set(_adds(same_shape.to_ir(arch, 3, 10))) - set(_adds(graph)) == {0, 1 + arch.depths[0]}


def _options(space) -> dict:
    import dataclasses

    return {f.name: getattr(space, f.name) for f in dataclasses.fields(space)}


def test_bad_zoo_options_are_named():
    with pytest.raises(ValueError, match="shortcut='always'.*same_shape, within_stage"):
        get_space("mcunet", {"shortcut": "always"})
    with pytest.raises(ValueError, match="head_channels=-1"):
        get_space("mcunet", {"head_channels": -1})
    with pytest.raises(ValueError, match=r"expand_choices \[2.5\]"):
        get_space("mcunet", {"expand_choices": [2.5, 3]})


@pytest.mark.slow
def test_zoo_options_export_runs_in_tflm_and_matches_the_ir_arena(tmp_path):
    """No feature mix and within-stage shortcuts survive the export: the .tflite has to_ir's ops and TFLM's
    measured arena head is the IR's estimate."""
    arch = ZOO_LIKE.decode({**ZOO_LIKE.random(random.Random(4)).to_dict(), "depths": [2, 2, 1],
                            "kernels": [[3, 5], [3, 3], [3]], "expands": [[3, 5], [5, 3], [3]]})
    checks.check_export_matches_ir(ZOO_LIKE, arch, 3, 10, tmp_path / "export")


def test_default_spaces_keep_shape_based_shortcuts():
    """The zoo options default to the space's original behaviour: a shortcut wherever shapes allow."""
    for space in (SPACE, get_space("mcunet", {})):
        assert (space.shortcut, space.head_channels > 0) == ("same_shape", True)
        for seed in range(5):
            plan = space.blocks(space.random(random.Random(seed)))
            assert [b["residual"] for b in plan] == [b["stride"] == 1 and b["cin"] == b["cout"] for b in plan]


def test_to_ir_keys_its_blocks_as_inverted_residual_key_does():
    """to_ir keys each block's segment from its row (no dict per block): the key inverted_residual_key gives the
    block's dict, so spaces that build MBConv blocks from dicts share the recorded segments."""
    from search_spaces.mcunet import _ROW_KEY, inverted_residual_key

    for space in (SPACE, ZOO_LIKE):
        for seed in range(20):
            arch = space.random(random.Random(seed))
            rows, plan = space.block_rows(arch), space.blocks(arch)
            assert [_ROW_KEY + row for row in rows] == [inverted_residual_key(blk) for blk in plan]
