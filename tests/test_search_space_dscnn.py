"""The DS-CNN space (2-D MFCC frames and 1-D time series): encodings, operators, IR vs PyTorch, exports."""

import random

import pytest

from search_spaces import get_space
from tests import space_checks as checks

KWS = get_space("dscnn", {})
ONE_D = get_space("dscnn", {"input_sizes": [[64, 1], [100, 1]], "first_kernels": [[5, 1], [9, 1]],
                            "first_strides": [[1, 1], [2, 1]], "kernel_choices": [[3, 1], [5, 1]],
                            "stride_choices": [[1, 1], [2, 1]], "channel_choices": [16, 24, 32],
                            "first_channel_choices": [16, 32]})


@pytest.mark.parametrize("space", [KWS, ONE_D], ids=["mfcc", "1d"])
@pytest.mark.parametrize("seed", range(3))
def test_ir_matches_pytorch_op_by_op(space, seed):
    checks.check_ir_matches_torch(space, space.random(random.Random(seed)), 1 + 2 * (seed % 2), 12)


@pytest.mark.parametrize("space", [KWS, ONE_D], ids=["mfcc", "1d"])
def test_json_roundtrip_mutate_crossover_optuna_bounds(space):
    checks.check_json_roundtrip(space)
    checks.check_mutate_and_crossover(space)
    checks.check_optuna(space)
    checks.check_bounds(space)


def test_one_d_input_stays_one_wide():
    arch = ONE_D.random(random.Random(4))
    graph = ONE_D.to_ir(arch, 3, 6)
    assert graph.tensors[graph.inputs[0]].shape[2:] == (1, 3)
    assert all(graph.tensors[op.outputs[0]].shape[2] == 1 for op in graph.ops if op.kind != "MEAN"
               and len(graph.tensors[op.outputs[0]].shape) == 4)


def test_options_must_be_pairs():
    with pytest.raises(ValueError, match="kernel_choices"):
        get_space("dscnn", {"kernel_choices": [3, 5]})


@pytest.mark.slow
@pytest.mark.parametrize("space", [KWS, ONE_D], ids=["mfcc", "1d"])
def test_export_runs_in_tflm_and_matches_the_ir_arena(tmp_path, space):
    arch = space.random(random.Random(7))
    checks.check_export_matches_ir(space, arch, 1 if space is KWS else 3, 12, tmp_path / "export")
