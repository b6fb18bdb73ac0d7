"""MCUNetV2 patch-based inference: receptive fields and recomputation by hand, and MCUNetV2's figures.

Published ground truth (MCUNetV2, Lin et al., NeurIPS 2021, arXiv 2110.15352, Figure 1): MobileNetV2
(w1.0, 224×224, int8) peaks at 1372 kB layer by layer; running its first 5 blocks (the stem and the first
four inverted-residual blocks, up to the first 28×28 feature map) on 4 × 4 patches brings the peak to 172 kB,
"reducing the overall peak memory by 8×". That figure counts each layer's input + output with in-place
depthwise convs and no held shortcut (1372 kB is block 1's 1×1 expand: 112²·16 + 112²·96 bytes).
"""

from __future__ import annotations

import pytest

from estimators.builder import GraphWriter
from estimators.macs import op_macs, total_macs
from estimators.mcunet_memory import analytic_live
from estimators.patch import PatchConfig, patch_plan, patch_sram
from estimators.reference_models import reference_model

KB = 1024


@pytest.fixture(scope="module")
def mbv2():
    return reference_model("mbv2-w1.0-r224")


def test_mobilenetv2_peak_memory_matches_mcunetv2_figure_1(mbv2):
    plan = patch_plan(mbv2, n_patches=4, n_layers=12, inplace_depthwise=True, hold_shortcuts=False)
    assert mbv2.tensors[plan.output].shape == (1, 28, 28, 32)              # first 5 blocks: stem + 4
    assert abs(plan.baseline_peak_bytes - 1372 * KB) <= KB
    assert abs(plan.peak_bytes - 172 * KB) <= KB
    assert round(plan.baseline_peak_bytes / plan.peak_bytes) == 8
    # The patch stage itself stays under the per-layer part that now sets the peak.
    assert plan.stage_peak_bytes < plan.rest_peak_bytes


def test_mobilenetv2_patch_geometry(mbv2):
    plan = patch_plan(mbv2, 4, 12)
    assert plan.patch_count == 16 and plan.output_tile == (7, 7)
    # 7 output rows back through project (1×1), dw 3×3/2, expand, [dw 3×3/1], dw 3×3/2, dw 3×3/1, stem 3×3/2:
    # 7 → 2·6+3 = 15 → 17 → 2·16+3 = 35 → 37 → 2·36+3 = 75 input rows; a patch advances 8·7 = 56 rows.
    assert plan.input_tile == (75, 75) and plan.overlap == (19, 19)
    assert 0 < plan.extra_macs < 0.2 * total_macs(mbv2)


def _two_convs(stride: int = 1) -> tuple:
    g = GraphWriter("two", (8 * stride, 8 * stride, 1))
    a = g.conv2d(g.graph.inputs[0], 1, 3, stride, name="c1")
    b = g.conv2d(a, 1, 3, 1, name="c2")
    return g.finish(g.conv2d(b, 4, 1, 1, name="head")), a, b


def test_overlap_recomputation_by_hand():
    graph, a, b = _two_convs()
    plan = patch_plan(graph, n_patches=2, n_layers=2)
    # c2's output rows [0, 4) need c1 rows [0, 5), rows [4, 8) need [3, 8): 10 rows and 10 columns of c1
    # are computed instead of 8 × 8; c2 itself is computed once (36 extra c1 pixels × 9 MACs).
    assert plan.output == b and plan.stage_ops == 2
    assert plan.extra_macs == (10 * 10 - 64) * 9
    assert plan.output_tile == (4, 4) and plan.input_tile == (8, 8)        # 4 + 2 + 2
    assert plan.overlap == (4, 4)
    # Largest patch: input tile 6×6 (clipped at the border: rows [0, 6)), c1 tile 5×5, full c2 (64 B).
    assert plan.tiles[graph.inputs[0]] == (6, 6) and plan.tiles[a] == (5, 5)
    assert plan.stage_peak_bytes == 36 + 25 + 64
    assert plan.live_bytes[2:] == analytic_live(graph)[2:]                  # the rest runs layer by layer


def test_stride_two_receptive_field():
    graph, a, _ = _two_convs(stride=2)                                       # 16×16 → c1/2 → 8×8 → c2
    plan = patch_plan(graph, 2, 2)
    assert plan.input_tile == (2 * (4 + 2 - 1) + 3, 2 * (4 + 2 - 1) + 3)     # 2(g − 1) + k with g = 6
    assert plan.overlap == (13 - 8, 13 - 8)
    assert plan.extra_macs == (10 * 10 - 64) * op_macs(graph, graph.ops[0]) // 64


def test_one_patch_costs_nothing_extra():
    graph, _, _ = _two_convs()
    plan = patch_plan(graph, 1, 2)
    assert plan.extra_macs == 0 and plan.overlap == (0, 0)


def test_stage_must_end_on_one_tensor():
    g = GraphWriter("res", (8, 8, 4))
    x0 = g.graph.inputs[0]
    y = g.conv2d(x0, 8, 1, name="expand")
    y = g.depthwise_conv2d(y, 3, name="dw")
    y = g.conv2d(y, 4, 1, name="project")
    graph = g.finish(g.add(y, x0))
    with pytest.raises(ValueError, match="exactly one tensor"):
        patch_plan(graph, 2, 1)                                              # expand out + held input
    assert patch_plan(graph, 2, 3).stage_ops == 4                            # the closing ADD joins the stage


def test_bad_configs_are_refused():
    graph, _, _ = _two_convs()
    with pytest.raises(ValueError, match="only 3 conv layers"):
        patch_plan(graph, 2, 4)
    with pytest.raises(ValueError, match="exceeds"):
        patch_plan(graph, 9, 2)
    with pytest.raises(ValueError, match="positive integer"):
        PatchConfig(0, 2)
    with pytest.raises(ValueError, match="analytic or tinyengine"):
        patch_sram(graph, PatchConfig(2, 2), "tflm")


def test_patch_sram_runtimes(mbv2):
    analytic = patch_sram(mbv2, PatchConfig(4, 12), "analytic")
    te = patch_sram(mbv2, PatchConfig(4, 12), "tinyengine")
    assert analytic.total_bytes == patch_plan(mbv2, 4, 12).peak_bytes
    assert len(analytic.live_bytes) == len(mbv2.ops)
    # TinyEngine: in-place depthwise (smaller arena) plus its im2col / kernel buffers.
    assert te.total_bytes > patch_plan(mbv2, 4, 12, inplace_depthwise=True).peak_bytes


def test_cli_patch_option_is_parsed_and_checked():
    from omegaconf import OmegaConf

    from tinynas.commands.estimate import load_patch
    from tinynas.errors import ConfigError

    assert load_patch(None) is None
    assert load_patch(OmegaConf.create({"patches": 4, "layers": 12})) == PatchConfig(4, 12)
    with pytest.raises(ConfigError, match="allowed and required: patches, layers"):
        load_patch(OmegaConf.create({"patches": 4}))
    with pytest.raises(ConfigError, match="positive integer"):
        load_patch(OmegaConf.create({"patches": 0, "layers": 3}))
