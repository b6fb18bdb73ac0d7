"""The MobileNetV3 space: encodings, sampling operators, the IR against PyTorch op by op, and an export."""

import random

import pytest
import torch

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


def test_small_first_block_and_fractional_expansions():
    """first_block_stride / first_block_se make MobileNetV3-Small's first block (3×3/2, SE, no expand conv);
    a fractional expand ratio gives make_divisible(cin · e) hidden channels (timm's 80 · 2.3 → 184)."""
    options = {"resolutions": [32], "widths": [1.0], "depth_choices": [1], "kernel_choices": [3],
               "expand_choices": [2.3, 3.67], "stages": [[80, 2]], "first_block_channels": 24,
               "head_channels": 64, "last_channels": 32}
    arch = {"resolution": 32, "width": 1.0, "depths": [1], "activations": ["relu"], "kernels": [[3]],
            "expands": [[3.67]], "se": [[0]]}
    plain = get_space("mobilenetv3", options)
    small = get_space("mobilenetv3", {**options, "first_block_stride": 2, "first_block_se": 1})
    g_plain, g_small = plain.to_ir(plain.decode(arch), 3, 10), small.to_ir(small.decode(arch), 3, 10)
    assert [op.kind for op in g_small.ops].count("MEAN") == [op.kind for op in g_plain.ops].count("MEAN") + 1
    first_dw = [g.tensors[next(op.outputs[0] for op in g.ops if op.kind == "DEPTHWISE_CONV_2D")].shape
                for g in (g_plain, g_small)]
    assert first_dw == [(1, 16, 16, 16), (1, 8, 8, 16)]
    expand = [op for op in g_plain.ops if op.outputs[0].startswith("block1/expand")][0]
    assert g_plain.tensors[expand.outputs[0]].shape[-1] == 88  # 24 · 3.67 = 88.08 → 88
    assert plain.blocks(plain.decode({**arch, "expands": [[2.3]]}))[1]["hidden"] == 56  # 24 · 2.3 = 55.2 → 56
    model = plain.build_torch(plain.decode(arch), 3, 10)
    hidden = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert hidden[-1] == 88 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="first_block_stride=3"):
        get_space("mobilenetv3", {"first_block_stride": 3})
