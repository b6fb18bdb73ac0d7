"""Structured pruning: the pruned model computes exactly what the original computes with the removed channels
zeroed (channels chosen by norms recomputed here in numpy), the pruned arch is an arch of the space that meets
the target by the estimators, and impossible targets are refused with the reachable figure."""

import copy

import numpy as np
import pytest
import torch

from estimators import load_mcu
from search_spaces import get_space
from tinynas.errors import ConfigError
from tinynas.paths import MCU_DIR
from tinynas.prune import PruneSpec, measure, prune
from tinynas.train import seed_everything

OPTIONS = {"resolutions": [16], "widths": [0.5], "depth_choices": [1, 2], "expand_choices": [3, 4, 6],
           "head_channels": 64}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup():
    space = get_space("mcunet", OPTIONS)
    arch = space.decode({"space": "mcunet", "resolution": 16, "width": 0.5, "depths": [2, 1, 2, 1, 1],
                         "kernels": [[3, 5], [3], [5, 3], [3], [3]], "expands": [[6, 6], [6], [6, 4], [6], [6]]})
    seed_everything(0)
    model = space.build_torch(arch, 1, 10)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return space, arch, model.eval(), load_mcu("stm32f446", MCU_DIR)


def numpy_l1(block):
    w = [u[0].weight.detach().numpy() for u in block.body]
    return (np.abs(w[0]).reshape(len(w[0]), -1).sum(1) + np.abs(w[1]).reshape(len(w[1]), -1).sum(1)
            + np.abs(w[2]).sum((0, 2, 3)))


def test_pruned_model_equals_original_with_least_important_channels_zeroed(setup):
    space, arch, model, mcu = setup
    res = prune(model, space, arch, 1, 10, mcu, "tflm", PruneSpec({"ratio": 0.8}))
    assert res.arch != arch
    space.check(res.arch)
    zeroed = copy.deepcopy(model)
    changed = 0
    for i, (old, new) in enumerate(zip(space.blocks(arch), space.blocks(res.arch))):
        if old["expand"] == new["expand"]:
            continue
        changed += 1
        hidden = new["cin"] * new["expand"]
        drop = np.argsort(numpy_l1(model.blocks[i]), kind="stable")[: old["cin"] * old["expand"] - hidden]
        zeroed.blocks[i].body[2][0].weight.data[:, torch.from_numpy(drop)] = 0
    assert changed >= 1
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(res.model.eval()(x), zeroed(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("metric, fraction", [("flash_bytes", 0.85), ("latency_ms", 0.85), ("ratio", 0.8)])
def test_pruned_arch_meets_the_target_by_the_estimators(setup, metric, fraction):
    space, arch, model, mcu = setup
    full = measure(space, arch, 1, 10, mcu, "tflm")
    value = fraction if metric == "ratio" else fraction * full[metric]
    res = prune(model, space, arch, 1, 10, mcu, "tflm", PruneSpec({metric: value}))
    key = "model_bytes" if metric == "ratio" else metric
    limit = fraction * full[key]
    assert res.before == full
    assert res.after[key] <= limit < full[key]
    assert res.after == measure(space, res.arch, 1, 10, mcu, "tflm")
    assert sum(p.numel() for p in res.model.parameters()) < sum(p.numel() for p in model.parameters())


def test_unreachable_target_names_the_smallest_reachable(setup):
    space, arch, model, mcu = setup
    with pytest.raises(ConfigError, match=r"smallest reachable: flash_bytes=\d+ \(target 1000\)"):
        prune(model, space, arch, 1, 10, mcu, "tflm", PruneSpec({"flash_bytes": 1000}))


def test_several_targets_are_met_together(setup):
    space, arch, model, mcu = setup
    full = measure(space, arch, 1, 10, mcu, "tflm")
    spec = PruneSpec.from_cfg({"target": {"ratio": 0.9, "latency_ms": 0.8 * full["latency_ms"], "sram_bytes": None}})
    res = prune(model, space, arch, 1, 10, mcu, "tflm", spec)
    assert res.after["model_bytes"] <= 0.9 * full["model_bytes"]
    assert res.after["latency_ms"] <= 0.8 * full["latency_ms"]


@pytest.mark.parametrize("cfg, needle", [({"target": {"ratio": None}}, "at least one of"),
                                         ({"target": {"ratio": 1.5}}, "ratio=1.5"),
                                         ({"target": {"macs": 5}}, "unknown: \\['macs'\\]"),
                                         ({"target": {"ratio": 0.5}, "importance": "taylor"}, "l1, l2")])
def test_bad_prune_options(cfg, needle):
    with pytest.raises(ConfigError, match=needle):
        PruneSpec.from_cfg(cfg)
