"""The MobileNetV3 space: encodings, sampling operators, the IR against PyTorch op by op, and an export."""

import random

import pytest

from estimators.macs import total_macs
from search_spaces import get_space
from tests import space_checks as checks

SPACE = get_space("mobilenetv3", {"resolutions": [24, 32, 40], "widths": [0.35, 0.5], "depth_choices": [1, 2],
                                  "head_channels": 256, "last_channels": 128})


@pytest.mark.parametrize("seed", range(5))
def test_ir_matches_pytorch_op_by_op(seed):
    checks.check_ir_matches_torch(SPACE, SPACE.random(random.Random(seed)), 1 + seed % 3, 10)


def test_json_roundtrip_mutate_crossover_optuna_bounds():
    checks.check_json_roundtrip(SPACE)
    checks.check_mutate_and_crossover(SPACE)
    checks.check_optuna(SPACE)
    checks.check_bounds(SPACE)


def test_se_and_hard_swish_are_tflm_ops():
    """SE blocks add MEAN / CONV_2D / MUL ops and hard-swish stages HARD_SWISH ops; ReLU fuses into convs."""
    arch = SPACE.random(random.Random(3))
    n = len(arch.depths)
    on = SPACE.decode({**arch.to_dict(), "se": [[1] * d for d in arch.depths], "activations": ["hswish"] * n})
    off = SPACE.decode({**arch.to_dict(), "se": [[0] * d for d in arch.depths], "activations": ["relu"] * n})
    kinds_on = [op.kind for op in SPACE.to_ir(on, 1, 10).ops]
    kinds_off = [op.kind for op in SPACE.to_ir(off, 1, 10).ops]
    blocks = sum(arch.depths)
    assert kinds_on.count("MUL") - kinds_off.count("MUL") == 2 * blocks
    assert kinds_on.count("MEAN") - kinds_off.count("MEAN") == blocks
    assert kinds_on.count("HARD_SWISH") > kinds_off.count("HARD_SWISH") >= 3  # stem, head, last FC
    assert set(kinds_on) <= {"CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "HARD_SWISH", "MEAN", "MUL", "ADD", "RESHAPE",
                            "FULLY_CONNECTED"}
    assert total_macs(SPACE.to_ir(on, 1, 10)) > total_macs(SPACE.to_ir(off, 1, 10))


def test_bad_activation_option_is_refused():
    with pytest.raises(ValueError, match="swish"):
        get_space("mobilenetv3", {"activation_choices": ["swish"]})


@pytest.mark.slow
def test_export_runs_in_tflm_and_matches_the_ir_arena(tmp_path):
    space = get_space("mobilenetv3", {"resolutions": [64], "widths": [0.35], "depth_choices": [1, 2],
                                      "head_channels": 128, "last_channels": 64})
    arch = space.random(random.Random(5))
    n = len(arch.depths)  # both activations and SE on and off somewhere
    arch = space.decode({**arch.to_dict(), "activations": ["hswish", "relu"] * (n // 2) + ["hswish"] * (n % 2),
                         "se": [[(s + b) % 2 for b in range(d)] for s, d in enumerate(arch.depths)]})
    checks.check_export_matches_ir(space, arch, 1, 10, tmp_path / "export")
