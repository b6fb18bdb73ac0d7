"""Flash: the int8 ``.tflite`` file's bytes, estimated from the IR, plus the runtime's code size.

A full-int8 flatbuffer holds the constant tensors' data (int8 weights, int32 biases and shape tensors), one
float32 scale and one int64 zero point per quantization channel of every quantized tensor (per output
channel for conv / depthwise weights and biases, one for activations), and per tensor its table, shape
vector, buffer entry and name. The model here is exactly that::

    bytes = Σ constant bytes + quant_param_bytes × Σ quantization channels + per_tensor_bytes × tensors + fixed

``per_tensor_bytes`` (tables + the exporter's average name length) and ``fixed_bytes`` (header, operator
codes, signature, metadata) depend on the exporter that wrote the file; both are fitted on real files by
``benchmarks/flash_calibration.py`` into ``data/flash_model.yaml``. Runtime code sizes come from
``data/runtime_code_size.yaml``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import yaml

from estimators.ir import Graph
from estimators.mcu import MCU
from estimators.table import OpTable, table_of

DATA_DIR = Path(__file__).resolve().parent / "data"
FLASH_MODEL = DATA_DIR / "flash_model.yaml"
RUNTIME_CODE = DATA_DIR / "runtime_code_size.yaml"


@dataclasses.dataclass(frozen=True)
class FlashEstimate:
    model_bytes: int
    runtime_bytes: int
    total_bytes: int
    model_source: str = "estimate"  # "file": model_bytes is a real model file's size


def with_model_file(flash: FlashEstimate, file_bytes: int) -> FlashEstimate:
    """``flash`` with the model's bytes taken from a real model file of ``file_bytes`` (not estimated)."""
    return FlashEstimate(file_bytes, flash.runtime_bytes, file_bytes + flash.runtime_bytes, "file")


@functools.lru_cache(maxsize=4)
def _yaml(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def flash_terms(graph: Graph, table: OpTable | None = None) -> dict[str, int]:
    """The counts the file-size model prices: constant bytes, quantization channels, tensors (``table``:
    the graph's :func:`~estimators.table.table_of`, when the caller has it)."""
    t = table or table_of(graph)
    return {"const_bytes": t.const_bytes, "quant_channels": t.quant_channels, "tensors": t.tensors}


def tflite_bytes(graph: Graph, exporter: str | None = None, table: OpTable | None = None) -> int:
    """Estimated size of ``graph`` as a full-int8 ``.tflite`` written by ``exporter`` (default: the project's)."""
    model = _yaml(FLASH_MODEL)
    exporter = exporter or model["default_exporter"]
    if exporter not in model["exporters"]:
        raise ValueError(f"unknown exporter {exporter!r}; calibrated: {', '.join(model['exporters'])}")
    c = model["exporters"][exporter]
    t = flash_terms(graph, table)
    return round(t["const_bytes"] + model["quant_param_bytes_per_channel"] * t["quant_channels"]
                 + c["per_tensor_bytes"] * t["tensors"] + c["fixed_bytes"])


def runtime_code_bytes(runtime: str) -> int:
    """Flash taken by ``runtime``'s code (interpreter and kernels)."""
    runtimes = _yaml(RUNTIME_CODE)["runtimes"]
    if runtime not in runtimes:
        raise ValueError(f"unknown runtime {runtime!r}; allowed: {', '.join(runtimes)}")
    return int(runtimes[runtime]["code_bytes"])


def estimate_flash(graph: Graph, runtime: str, mcu: MCU, table: OpTable | None = None) -> FlashEstimate:
    """Model file bytes + runtime code bytes (``mcu`` is unused: code sizes are per runtime, Cortex-M builds)."""
    model, code = tflite_bytes(graph, table=table), runtime_code_bytes(runtime)
    return FlashEstimate(model, code, model + code)
