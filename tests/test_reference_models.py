"""Reference-model IRs reproduce the published MAC and parameter counts of latency_calibration.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from estimators.macs import total_macs
from estimators.reference_models import REFERENCE_MODELS, model_key, reference_model

# Published MACs / params, as shipped with the package (tests/test_latency.py checks it equals shared/reference).
CSV = Path(__file__).resolve().parents[1] / "estimators" / "data" / "latency_calibration.csv"
pytestmark = pytest.mark.skipif(not CSV.is_file(), reason=f"reference table {CSV} not present")

# MicroNets' MMACs figures are rounded and its DS-CNN strides are not published; see reference_models' doc.
ROUNDED_SOURCES = ("MicroNets",)


def _models() -> dict[str, dict[str, str]]:
    with open(CSV) as f:
        return {r["model"]: r for r in csv.DictReader(f)}


@pytest.mark.parametrize("row", list(_models().values()), ids=lambda r: model_key(r["model"]))
def test_macs_match_published(row):
    macs = total_macs(reference_model(row["model"]))
    published = int(row["macs"])
    if row["source"].startswith(ROUNDED_SOURCES):
        assert macs == pytest.approx(published, rel=0.02)
    else:
        assert macs == published


@pytest.mark.parametrize("row", [r for r in _models().values() if r["params"]], ids=lambda r: model_key(r["model"]))
def test_params_match_published(row):
    # Published counts are every constant element of the .tflite (weights, biases, the Flatten's shape tensor).
    graph = reference_model(row["model"])
    assert sum(t.numel for t in graph.constants()) == int(row["params"])


def test_every_calibration_model_has_a_builder():
    assert {model_key(m) for m in _models()} <= set(REFERENCE_MODELS)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="mlperf_kws_dscnn"):
        reference_model("resnet50")


def test_graphs_are_valid_and_end_in_the_class_count():
    classes = {"mlperf_kws_dscnn": 12, "mlperf_vww_mobilenetv1_0.25_96": 2, "mlperf_ic_resnet8": 10,
               "mlperf_ad_fc_autoencoder": 640, "mcunet-5fps": 1000, "mbv2-w0.3-r80": 1000, "dscnn_l": 12}
    for key, n in classes.items():
        g = reference_model(key)
        g.validate()
        assert g.tensors[g.outputs[0]].shape == (1, n)
