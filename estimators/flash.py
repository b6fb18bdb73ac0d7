"""Flash: the int8 ``.tflite`` file's bytes, estimated from the IR, plus the runtime's code size.

A full-int8 flatbuffer holds the constant tensors' data (int8 weights, int32 biases and shape tensors), one
float32 scale and one int64 zero point per quantization channel of every quantized tensor (per output
channel for conv / depthwise weights and biases, one for activations), and per tensor its table, shape
vector, buffer entry and name. The model here is exactly that::

    bytes = Σ constant bytes + quant_param_bytes × Σ quantization channels + per_tensor_bytes × tensors + fixed

``per_tensor_bytes`` (tables + the exporter's average name length) and ``fixed_bytes`` (header, operator
codes, signature, metadata) depend on the exporter that wrote the file; both are fitted on real files by
``benchmarks/flash_calibration.py`` into ``data/flash_model.yaml``.

The runtime's code (:func:`runtime_code`) is that of exactly the op kinds the model uses, on its core, from
``data/runtime_code_size.yaml``: for ``tflm``, measured in linked TFLM + CMSIS-NN firmware by
``benchmarks/runtime_code_size.py``, as a base (interpreter, allocator, planner and the C library they reach)
plus groups of code, each linked by a set of op kinds (one op's own kernel, or code several share: CMSIS-NN's
matrix products, soft-float helpers); a model's code is the base plus every group that holds one of its ops.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Iterable

import yaml

from estimators.ir import Graph
from estimators.mcu import MCU
from estimators.table import OpTable, per_run, table_of

DATA_DIR = Path(__file__).resolve().parent / "data"
FLASH_MODEL = DATA_DIR / "flash_model.yaml"
RUNTIME_CODE = DATA_DIR / "runtime_code_size.yaml"


@dataclasses.dataclass(frozen=True)
class FlashEstimate:
    model_bytes: int
    runtime_bytes: int
    total_bytes: int
    model_source: str = "estimate"  # "file": model_bytes is a real model file's size
    runtime_source: str = ""  # where runtime_bytes comes from (a borrowed core's build is named)


def with_model_file(flash: FlashEstimate, file_bytes: int) -> FlashEstimate:
    """``flash`` with the model's bytes taken from a real model file of ``file_bytes`` (not estimated)."""
    return FlashEstimate(file_bytes, flash.runtime_bytes, file_bytes + flash.runtime_bytes, "file",
                         flash.runtime_source)


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


@dataclasses.dataclass(frozen=True)
class RuntimeCode:
    bytes: int
    source: str  # the build measured (a borrowed one says so) or the published figure's source


def runtime_code(runtime: str, core: str, ops: Iterable[str]) -> RuntimeCode:
    """Flash taken by ``runtime``'s code (interpreter and the kernels of the op kinds ``ops``) on ``core``."""
    return _runtime_code(runtime, str(core), frozenset(ops))


def runtime_code_bytes(runtime: str, core: str, ops: Iterable[str]) -> int:
    return runtime_code(runtime, core, ops).bytes


def _family(core: str) -> tuple[str, str | None]:
    """(family, its CMSIS-NN class) of an MCU core string; ('', None) for a core no family matches (a host)."""
    from estimators.latency import core_families, core_family

    try:
        family = core_family(core)
    except ValueError:
        return "", None
    return family, core_families()["families"][family]["isa"]


@functools.lru_cache(maxsize=1024)
def _runtime_code(runtime: str, core: str, ops: frozenset[str]) -> RuntimeCode:
    runtimes = _yaml(RUNTIME_CODE)["runtimes"]
    if runtime not in runtimes:
        raise ValueError(f"unknown runtime {runtime!r}; allowed: {', '.join(runtimes)}")
    spec = runtimes[runtime]
    if "same_as" in spec:
        measured = _runtime_code(spec["same_as"], core, ops)
        return RuntimeCode(measured.bytes, f"{spec['source']} ({measured.source})")
    if "cores" not in spec:
        return RuntimeCode(int(spec["code_bytes"]), spec["source"])
    family, isa = _family(core)
    if family in spec["cores"]:
        build, note = family, ""
    else:
        build = spec["borrow"][isa or "other"]
        build = build if build in spec["cores"] else next(iter(spec["cores"]))
        note = f"; no {runtime} build for {core}: the {build} build's figures"
    entry = spec["cores"][build]
    groups = [g for g in entry["groups"] if not ops.isdisjoint(g["ops"])]
    unknown = sorted(ops - set(entry["ops"]))
    if unknown:
        note += f"; no measured code for {', '.join(unknown)}"
    return RuntimeCode(entry["base_bytes"] + sum(g["bytes"] for g in groups),
                       f"{runtime} {build} build, TFLM {entry['tflm_commit'][:7]}, CMSIS-NN "
                       f"{entry['cmsis_nn_commit'][:7]}, {entry['compiler']}{note}")


def _kinds(ops) -> frozenset[str]:
    return frozenset(op.kind for op in ops)


@functools.lru_cache(maxsize=4096)
def _runs_code(runtime: str, core: str, run_kinds: tuple[frozenset[str], ...]) -> RuntimeCode:
    """:func:`runtime_code` of the union of the op kinds of a table's runs (a search meets the same runs often)."""
    return runtime_code(runtime, core, frozenset().union(*run_kinds))


def estimate_flash(graph: Graph, runtime: str, mcu: MCU, table: OpTable | None = None) -> FlashEstimate:
    """Model file bytes + the code of ``runtime`` for exactly the op kinds of ``graph``, on ``mcu``'s core."""
    table = table or table_of(graph)
    code = _runs_code(runtime, str(mcu.core), tuple(per_run(table, "op kinds", _kinds)))
    model = tflite_bytes(graph, table=table)
    return FlashEstimate(model, code.bytes, model + code.bytes, runtime_source=code.source)
