"""Per-op latency: the instruction model's cycles (runtime=tflm on DSP-class cores), else a MAC-based model.

Instructions to cycles (:func:`instruction_cycles`, :func:`op_cycles`)::

    cycles = cycles_per_instruction × (instructions + (fully_connected_cpi_ratio − 1) × FC instructions)

Both per board (``conf/mcu/<board>.yaml``, fitted by ``benchmarks/latency_calibration.py``): FULLY_CONNECTED
ops run CMSIS-NN's matrix × vector kernel, which streams every weight once with no reuse, and on some boards
at their own rate (the MLPerf Tiny AD autoencoder on the STM32L4R5: 2.0 cycles per instruction against 2.8–3.0
for the conv models); the ratio is 1 (null) where no FC-heavy point calibrates it.

MAC-based model, for the other runtimes and cores (few parameters, because there are few published points)::

    cycles(op) = scale[family, runtime] × (ratio[kind, isa] × MACs(op) + element_cycles × output elements(op))

``ratio`` is 1 for CONV_2D and DEPTHWISE_CONV_2D and fitted for FULLY_CONNECTED per ISA class (DSP or MVE:
fully connected layers stream every weight once and are memory bound, markedly so on Helium cores);
``element_cycles`` prices the per-output work every op does (requantization, activation, pooling, adds),
which is what makes depthwise layers — few MACs per output — the most expensive per MAC. RESHAPE is free
(TFLite Micro aliases it); under TinyEngine (and MCUNet's analytic accounting) the ops its code generator
skips are free too, PAD included (folded into the conv that reads it). The coefficients live in ``data/latency_coefficients.yaml``, written by
``benchmarks/latency_calibration.py``; families and runtimes without points of their own borrow a calibrated
one's coefficients as ``data/core_families.yaml`` says (relative CoreMark/MHz, reference-kernel slowdown).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from pathlib import Path
from typing import Any

import yaml

from estimators.instructions import InstructionModel
from estimators.ir import Graph
from estimators.mcu import MCU
from estimators.mcunet_memory import TINYENGINE_VIEWS
from estimators.table import OpFacts, OpTable, op_values, per_op, per_run, table_of

DATA_DIR = Path(__file__).resolve().parent / "data"
COEFFICIENTS = DATA_DIR / "latency_coefficients.yaml"
PUBLISHED_RUNTIME = DATA_DIR / "published_runtime_instructions.csv"
FAMILIES = DATA_DIR / "core_families.yaml"

FREE_KINDS = frozenset({"RESHAPE"})
#: Ops that cost nothing under each runtime that differs from :data:`FREE_KINDS`.
RUNTIME_FREE_KINDS = {"tinyengine": TINYENGINE_VIEWS, "analytic": TINYENGINE_VIEWS}


def free_kinds(runtime: str) -> frozenset[str]:
    """The op kinds ``runtime`` does not run (no cycles)."""
    return RUNTIME_FREE_KINDS.get(runtime, FREE_KINDS)


@functools.lru_cache(maxsize=None)
def core_families(path: str | Path = FAMILIES) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=256)
def core_family(core: str) -> str:
    """The family of an MCU ``core`` string, e.g. 'cortex-m4f' → 'cortex-m4', 'xtensa-lx7 (x2)' → 'xtensa-lx7'."""
    base = core.split(" (")[0].strip().lower()
    for family, spec in core_families()["families"].items():
        if any(base == m or base.startswith(m) for m in spec["match"]):
            return family
    known = sorted(m for spec in core_families()["families"].values() for m in spec["match"])
    raise ValueError(f"core {core!r} maps to no core family; known cores: {', '.join(known)}")


def op_terms(op: OpFacts, runtime: str = "tflm") -> tuple[int, int]:
    """(MACs, output elements) of ``op`` under ``runtime``, the two quantities the model prices."""
    if op.kind in free_kinds(runtime):
        return 0, 0
    return op.macs, op.out_numel


def graph_terms(graph: Graph, runtime: str = "tflm") -> dict[str, int]:
    """Summed model terms of a whole graph under ``runtime``: MACs by kind class ('mac', 'fc_mac') and
    'elements'."""
    terms = {"mac": 0, "fc_mac": 0, "elements": 0}
    for op in table_of(graph).ops:
        macs, elements = op_terms(op, runtime)
        terms["fc_mac" if op.kind == "FULLY_CONNECTED" else "mac"] += macs
        terms["elements"] += elements
    return terms


@dataclasses.dataclass(frozen=True, eq=False)
class LatencyModel:
    """Fitted coefficients plus the rules that extend them to uncalibrated families and runtimes."""

    scale: dict[tuple[str, str], float]  # (family, runtime) → cycle multiplier, calibrated pairs only
    fc_ratio: dict[str, float]  # isa → cycles of an FC MAC relative to a conv MAC
    element_cycles: float
    families: dict[str, Any] = dataclasses.field(default_factory=lambda: core_families())
    # Names this model's per-op derivations in the ops' memos (unique per instance, unlike id()).
    token: int = dataclasses.field(default_factory=lambda: next(_TOKENS), init=False, repr=False)

    @classmethod
    def from_yaml(cls, path: str | Path = COEFFICIENTS) -> "LatencyModel":
        with open(path) as f:
            d = yaml.safe_load(f)
        scale = {(s["family"], s["runtime"]): float(s["scale"]) for s in d["scale"]}
        return cls(scale, {k: float(v) for k, v in d["fc_ratio"].items()}, float(d["element_cycles"]))

    def isa(self, family: str) -> str:
        return self.families["families"][family]["isa"]

    @functools.lru_cache(maxsize=256)
    def family_scale(self, family: str, runtime: str) -> float:
        """Cycle multiplier for ``family`` under ``runtime``, derived where no point calibrates the pair."""
        rt = self.families["runtimes"].get(runtime)
        if rt is None:
            raise ValueError(f"unknown runtime {runtime!r}; allowed: {', '.join(self.families['runtimes'])}")
        if "same_as" in rt:
            return self.family_scale(family, rt["same_as"]) * float(rt.get("slowdown", 1.0))
        if (family, runtime) in self.scale:
            return self.scale[(family, runtime)]
        if runtime != "tflm":  # e.g. tinyengine on a core timed only with tflm: carry the runtime ratio over
            ref = next((f for f, r in self.scale if r == runtime and (f, "tflm") in self.scale), None)
            if ref is None:
                raise ValueError(f"runtime {runtime!r} has no calibration point on any core")
            return self.family_scale(family, "tflm") * self.scale[(ref, runtime)] / self.scale[(ref, "tflm")]
        anchor = self.families["anchor"][self.isa(family)]
        if (anchor, runtime) not in self.scale:
            raise ValueError(f"core family {family!r} has no calibration and its anchor {anchor!r} has none either")
        fam = self.families["families"]
        return self.scale[(anchor, runtime)] * fam[anchor]["coremark_per_mhz"] / fam[family]["coremark_per_mhz"]

    def cycles(self, terms: dict[str, int], family: str, runtime: str) -> float:
        """Cycles of a graph (or op) from its :func:`graph_terms`."""
        return self.family_scale(family, runtime) * (
            terms["mac"] + self.fc_ratio[self.isa(family)] * terms["fc_mac"] + self.element_cycles * terms["elements"])

    def op_ms(self, table: OpTable, family: str, runtime: str, clock_mhz: float) -> list[float]:
        """Milliseconds of each op of ``table`` at ``clock_mhz`` (each op's facts remember theirs)."""
        s = self.family_scale(family, runtime)
        fc, b = self.fc_ratio[self.isa(family)], self.element_cycles
        to_ms = 1e3 / (clock_mhz * 1e6)
        free = free_kinds(runtime)

        def ms(op: OpFacts) -> float:
            if op.kind in free:
                return s * 0 * to_ms
            m = op.macs
            return s * ((fc * m if op.kind == "FULLY_CONNECTED" else m) + b * op.out_numel) * to_ms

        return per_op(table, f"latency ms {self.token} {family} {runtime} {clock_mhz!r}", ms)


_TOKENS = itertools.count()


@functools.lru_cache(maxsize=4)
def load_latency_model(path: str | Path = COEFFICIENTS) -> LatencyModel:
    return LatencyModel.from_yaml(path)


def estimate_latency(graph: Graph, mcu: MCU, runtime: str, table: OpTable | None = None) -> list[float]:
    """Milliseconds per op, in graph order (zeros for a board without a clock, e.g. the ``host`` target);
    ``table``: the graph's :func:`~estimators.table.table_of`, when the caller has it."""
    table = table or table_of(graph)
    if mcu.clock_mhz <= 0:
        return [0.0] * len(table.ops)
    return load_latency_model().op_ms(table, core_family(mcu.core), runtime, mcu.clock_mhz)


# -- instructions to cycles (runtime=tflm on DSP-class cores) ----------------------------------------------
@functools.lru_cache(maxsize=2)
def published_runtime_instructions(path: str | Path = PUBLISHED_RUNTIME) -> dict[tuple[str, str], tuple[int, int]]:
    """Instructions of one Invoke, (all, FULLY_CONNECTED), of the runtime a published setup itself ran, by (mcu,
    latency_calibration.csv model): what its latency was spent on, where it differs from the pinned runtime's
    (benchmarks/published_runtime.py, which builds the submission's own TFLM + CMSIS-NN and emulates it)."""
    import csv

    with open(path) as f:
        return {(r["mcu"], r["model"]): (int(r["instructions"]), int(r["fully_connected_instructions"]))
                for r in csv.DictReader(f)}


def fully_connected_instructions(model: InstructionModel, table: OpTable) -> int:
    """Instructions of ``table``'s FULLY_CONNECTED ops (remembered per run and op)."""
    key = _FC_KEYS.get(model.token) or _FC_KEYS.setdefault(model.token, f"fc instructions {model.token}")

    def fc(op: OpFacts) -> int:
        return model.op_instructions(op) if op.kind == "FULLY_CONNECTED" else 0

    return sum(per_run(table, key, lambda ops: sum(op_values(ops, key, fc))))


_FC_KEYS: dict[int, str] = {}  # per instruction model: the per_run and per-op key of its FC instructions


def fully_connected_ratio(mcu: MCU, runtime: str) -> float | None:
    """``mcu.fully_connected_cpi_ratio`` where it applies: it is fitted on TFLM + CMSIS-NN's FULLY_CONNECTED kernel
    (a matrix × vector loop), which other runtimes do not run (TinyEngine runs an FC as a 1×1 convolution)."""
    return mcu.fully_connected_cpi_ratio if runtime == "tflm" else None


def instruction_cycles(model: InstructionModel, table: OpTable, mcu: MCU, instructions: int,
                       runtime: str = "tflm") -> float:
    """Cycles of one Invoke of ``table`` on ``mcu`` (which has a ``cycles_per_instruction``) under ``runtime``,
    given its ``instructions`` (``model.graph_instructions(table)``)."""
    cpi, ratio = mcu.cycles_per_instruction, fully_connected_ratio(mcu, runtime)
    if ratio is None or ratio == 1:
        return instructions * cpi
    return (instructions + (ratio - 1) * fully_connected_instructions(model, table)) * cpi


def op_cycles(table: OpTable, instructions: list[int], mcu: MCU, runtime: str = "tflm") -> list[float]:
    """Cycles of each op of ``table`` from its ``instructions`` (``model.per_op(table)``) on ``mcu``."""
    cpi = mcu.cycles_per_instruction
    fc = cpi * (fully_connected_ratio(mcu, runtime) or 1.0)
    return [n * (fc if op.kind == "FULLY_CONNECTED" else cpi) for op, n in zip(table.ops, instructions, strict=True)]


def fit_cycles_per_instruction(points: list[tuple[float, int, int]], ratio: float | None = None
                               ) -> tuple[float, float | None]:
    """(cycles_per_instruction, fully_connected_cpi_ratio) of a board from its measured points, each (cycles,
    instructions, FULLY_CONNECTED instructions); least squares on log cycles (a 10 ms and a 600 ms point weigh
    alike). Both are fitted when the points hold an FC-heavy model (over half its instructions in FC ops) and
    another; otherwise only the first, with the FC ops at ``ratio`` (None: 1), which is returned."""
    heavy = [2 * f > n for _, n, f in points]
    if not (any(heavy) and not all(heavy)):
        logs = [math.log(c / (n + ((ratio or 1.0) - 1) * f)) for c, n, f in points]
        return math.exp(sum(logs) / len(logs)), ratio
    u, r = sum(math.log(c / n) for c, n, _ in points) / len(points), 1.0
    for _ in range(50):  # Gauss-Newton on (log cycles_per_instruction, ratio)
        jtj, jtf = [0.0, 0.0, 0.0], [0.0, 0.0]
        for c, n, f in points:
            priced = n + (r - 1) * f
            res, d = u + math.log(priced / c), f / priced
            jtj[0] += 1
            jtj[1] += d
            jtj[2] += d * d
            jtf[0] += res
            jtf[1] += res * d
        det = jtj[0] * jtj[2] - jtj[1] ** 2
        du = (jtj[2] * jtf[0] - jtj[1] * jtf[1]) / det
        dr = (jtj[0] * jtf[1] - jtj[1] * jtf[0]) / det
        u, r = u - du, max(r - dr, 1e-3)
        if abs(du) < 1e-12 and abs(dr) < 1e-12:
            break
    return math.exp(u), r
