"""Named reference networks are points of our spaces and reproduce their published MACs and params."""

import csv
from pathlib import Path

import pytest

from estimators.macs import total_macs, total_params
from estimators.reference_models import reference_model
from search_spaces import get_space
from search_spaces.named import NAMED, available, named_arch

CSV = Path(__file__).resolve().parents[1] / "estimators" / "data" / "latency_calibration.csv"  # copy of shared/reference
# named arch → latency_calibration.csv model key (published by MLPerf Tiny, exact)
MLPERF = {"mlperf-kws-dscnn": "mlperf_kws_dscnn", "mlperf-vww-mobilenetv1-0.25": "mlperf_vww_mobilenetv1_0.25_96"}


def _weighted(graph):
    return [(op.kind, *(graph.tensors[t].shape for t in op.inputs[1:]), graph.tensors[op.outputs[0]].shape)
            for op in graph.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]


def _counted_params(point) -> int:
    graph = point.to_ir()
    if point.params_counting == "weights":  # TF-slim: conv/FC weights and the classifier's bias
        return sum(graph.tensors[op.inputs[1]].numel for op in graph.ops
                   if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")) + point.num_classes
    if point.params_counting == "torch":
        return sum(p.numel() for p in point.build_torch().parameters())
    if point.params_counting == "torchvision":  # + BN's second parameter per channel, outside SE and "last"
        return total_params(graph) + sum(graph.tensors[op.outputs[0]].shape[-1] for op in graph.ops
                                         if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")
                                         and "/se/" not in op.outputs[0] and not op.outputs[0].startswith("last/"))
    return total_params(graph)


@pytest.mark.parametrize("name", available())
def test_named_point_is_in_its_space_and_matches_published_figures(name):
    point = named_arch(name)
    space_name, options, arch = point
    assert space_name == point.space_name and get_space(space_name, options).decode(arch.to_dict()) == arch
    graph = point.to_ir()
    assert graph.tensors[graph.outputs[0]].shape == (1, point.num_classes)
    assert abs(total_macs(graph) - point.published_macs) <= point.macs_rounding / 2
    if point.params_counting != "file":
        assert abs(_counted_params(point) - point.published_params) <= point.params_rounding / 2


@pytest.mark.skipif(not CSV.is_file(), reason=f"reference table {CSV} not present")
@pytest.mark.parametrize("name", sorted(MLPERF))
def test_mlperf_points_are_the_reference_models(name):
    """Same weighted layers as the reference IR (MLPerf Tiny's Keras models), the csv's exact MACs, and the
    csv's params = our weights and biases + the reference's Flatten shape constant (our head has none)."""
    with open(CSV) as f:
        row = next(r for r in csv.DictReader(f) if r["model"] == MLPERF[name])
    ours, ref = named_arch(name).to_ir(), reference_model(MLPERF[name])
    assert _weighted(ours) == _weighted(ref)
    assert total_macs(ours) == int(row["macs"]) == named_arch(name).published_macs
    flatten = sum(ref.tensors[t].numel for op in ref.ops if op.kind == "RESHAPE" for t in op.inputs[1:])
    assert total_params(ours) + flatten == int(row["params"]) == named_arch(name).published_params


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="mlperf-kws-dscnn"):
        named_arch("resnet50")
    assert set(MLPERF) <= set(NAMED)


def test_named_archs_lists_every_point_and_aliases_resolve():
    from search_spaces.named import ALIASES, named_archs

    names = named_archs()
    assert names == sorted(NAMED) and {"mcunet-in0", "mcunet-in4", "mobilenetv2-0.35-224"} <= set(names)
    assert named_arch("mcunet-5fps") is named_arch("mcunet-in1")
    assert set(ALIASES.values()) <= set(names) and not set(ALIASES) & set(names)


def test_estimate_command_takes_a_named_arch():
    """`tinynas estimate arch=NAME` (here a config-name alias) estimates the point as published; an unknown
    name is refused with the known ones."""
    from omegaconf import OmegaConf

    from tinynas.commands.estimate import load_graph
    from tinynas.errors import ConfigError

    graph = load_graph(OmegaConf.create({"arch": "mcunet-5fps", "model": None}))
    assert (graph.name, total_macs(graph)) == ("mcunet-in1", total_macs(reference_model("mcunet-5fps")))
    with pytest.raises(ConfigError, match="mcunet-in9: no such file and not a named arch .*mcunet-in1.* or "
                                          "reference model .*mlperf_ic_resnet8"):
        load_graph(OmegaConf.create({"arch": "mcunet-in9", "model": None}))
    # MLPerf Tiny's IC ResNet-8 and AD autoencoder are in no search space; arch= still loads them by name (their
    # published MACs and params are checked in tests/test_reference_models.py).
    for name in ("mlperf_ic_resnet8", "mlperf_ad_fc_autoencoder"):
        graph = load_graph(OmegaConf.create({"arch": name, "model": None}))
        assert total_macs(graph) == total_macs(reference_model(name)) > 0


@pytest.mark.parametrize("name", ["mobilenetv3-large-1.0-224", "mobilenetv3-small-1.0-224"])
def test_mobilenetv3_points_build_with_torchvisions_parameter_count(name):
    """Fractional expand ratios (72, 88, 184 hidden channels) build in PyTorch; the trainable parameters equal
    torchvision's published counts (5,483,032 and 2,542,856)."""
    point = named_arch(name)
    assert sum(p.numel() for p in point.build_torch().parameters()) == point.published_params
