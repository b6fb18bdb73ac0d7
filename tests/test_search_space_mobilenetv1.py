"""The MobileNetV1 space: encodings, sampling operators, the IR against PyTorch op by op, and an export."""

import random

import pytest

from search_spaces import get_space
from tests import space_checks as checks

SPACE = get_space("mobilenetv1", {"resolutions": [24, 32, 48], "widths": [0.25, 0.5], "kernel_choices": [3, 5, 7]})


@pytest.mark.parametrize("seed", range(5))
def test_ir_matches_pytorch_op_by_op(seed):
    checks.check_ir_matches_torch(SPACE, SPACE.random(random.Random(seed)), 1 + seed % 3, 10)


def test_json_roundtrip_mutate_crossover_optuna_bounds():
    checks.check_json_roundtrip(SPACE)
    checks.check_mutate_and_crossover(SPACE)
    checks.check_optuna(SPACE)
    checks.check_bounds(SPACE)


def test_stage_depths_range_up_to_mobilenetv1():
    params = SPACE.params(SPACE.largest(SPACE.smallest()))
    assert [params[f"s{s}.depth"] for s in range(5)] == [1, 2, 2, 6, 2]
    with pytest.raises(ValueError, match=r"depths\[3\]=7"):
        SPACE.decode({**SPACE.smallest().to_dict(), "depths": [1, 1, 1, 7, 1],
                      "kernels": [[3], [3], [3], [3] * 7, [3]]})


@pytest.mark.slow
def test_export_runs_in_tflm_and_matches_the_ir_arena(tmp_path):
    space = get_space("mobilenetv1", {"resolutions": [40], "widths": [0.25], "kernel_choices": [3, 5]})
    checks.check_export_matches_ir(space, space.random(random.Random(2)), 3, 4, tmp_path / "export")
