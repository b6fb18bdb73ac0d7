"""The EfficientNet-lite space: encodings, sampling operators, the IR against PyTorch op by op, and an export."""

import random

import pytest

from search_spaces import get_space
from tests import space_checks as checks

SPACE = get_space("efficientnet_lite", {"resolutions": [24, 32, 40], "widths": [0.25, 0.35],
                                        "depth_coefficients": [0.5, 1.0], "head_channels": 256})


@pytest.mark.parametrize("seed", range(4))
def test_ir_matches_pytorch_op_by_op(seed):
    checks.check_ir_matches_torch(SPACE, SPACE.random(random.Random(seed)), 1 + seed % 3, 10)


def test_json_roundtrip_mutate_crossover_optuna_bounds():
    checks.check_json_roundtrip(SPACE)
    checks.check_mutate_and_crossover(SPACE)
    checks.check_optuna(SPACE)
    checks.check_bounds(SPACE)


def test_depth_coefficient_scales_repeats_except_the_last_stage():
    # EfficientNet's round_repeats: ceil(coefficient · repeats); lite keeps the last stage's single block.
    space = get_space("efficientnet_lite", {"depth_coefficients": [0.5, 1.8]})
    small, big = space.smallest(), space.largest(space.smallest())
    assert (small.depth, big.depth) == (0.5, 1.8)
    assert [len(k) for k in small.kernels] == [1, 1, 2, 2, 2, 1]
    assert [len(k) for k in big.kernels] == [4, 4, 6, 6, 8, 1]


@pytest.mark.slow
def test_export_runs_in_tflm_and_matches_the_ir_arena(tmp_path):
    space = get_space("efficientnet_lite", {"resolutions": [32], "widths": [0.25], "depth_coefficients": [0.5],
                                            "head_channels": 128})
    checks.check_export_matches_ir(space, space.random(random.Random(1)), 3, 10, tmp_path / "export")
