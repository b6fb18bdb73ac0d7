"""`tinynas calibrate`: a board's cycles per instruction from latencies measured on it.

cycles_per_instruction = measured_ms × clock ÷ the model's instructions (TFLM + CMSIS-NN, the estimators'
instruction model), its FULLY_CONNECTED instructions counted × the board's ``fully_connected_cpi_ratio``.
Several models: the geometric mean, and the spread as each model's leave-one-out error; when they hold an
FC-heavy model (over half its instructions in FULLY_CONNECTED ops) and another, the ratio is fitted too
(:func:`estimators.latency.fit_cycles_per_instruction`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from tinynas.commands.common import check_runtime, load_mcu_cfg
from tinynas.errors import ConfigError
from tinynas.report import write_json


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]


def pairs(cfg) -> list[tuple[str, str, float]]:
    """(key, model or arch, measured ms) per measurement, checked."""
    if (cfg.model is None) == (cfg.arch is None):
        raise ConfigError("give exactly one of model=FILE.tflite or arch=NAME (or a list of either)")
    key = "model" if cfg.model is not None else "arch"
    models, measured = _as_list(cfg[key]), _as_list(cfg.measured_ms)
    if not measured:
        raise ConfigError("measured_ms= is required: the latency measured on the board, in ms (one per model)")
    if len(models) != len(measured):
        raise ConfigError(f"{key}= has {len(models)} entries and measured_ms= {len(measured)}; give one "
                          "measured_ms per model")
    out = []
    for m, ms in zip(models, measured):
        try:
            value = float(ms)
        except (TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value) or value <= 0 or isinstance(ms, bool):
            raise ConfigError(f"measured_ms={ms!r}: allowed: a positive number of milliseconds")
        out.append((key, str(m), value))
    return out


def fit(points: list[tuple[float, int, int]], ratio: float | None = None) -> tuple[float, float | None, list[float]]:
    """(cycles_per_instruction, fully_connected_cpi_ratio, each point's leave-one-out latency error (empty for one
    point)) over (cycles, instructions, FC instructions) points; ``ratio``: the board's, kept unless fitted."""
    from estimators.latency import fit_cycles_per_instruction

    cpi, fitted = fit_cycles_per_instruction(points, ratio)
    loo = []
    if len(points) > 1:
        for i, (c, n, f) in enumerate(points):
            rest_cpi, rest_ratio = fit_cycles_per_instruction(points[:i] + points[i + 1:], ratio)
            loo.append(rest_cpi * (n + ((rest_ratio or 1.0) - 1) * f) / c - 1)
    return cpi, fitted, loo


# Runtimes with an instruction model (estimators.instructions.instruction_model_for): TFLM + CMSIS-NN, and
# TinyEngine's generated code (which `analytic` borrows; calibrate that one as runtime=tinyengine).
CALIBRATED_RUNTIMES = ("tflm", "tinyengine")


def run(cfg) -> dict:
    from estimators.instructions import instruction_model_for
    from estimators.latency import fully_connected_instructions, fully_connected_ratio
    from estimators.table import table_of
    from tinynas.commands.estimate import load_graph

    if cfg.format not in ("text", "json"):
        raise ConfigError(f"format={cfg.format!r} is unknown; allowed: text, json")
    runtime = check_runtime(cfg.runtime)
    mcu = load_mcu_cfg(cfg)
    if runtime not in CALIBRATED_RUNTIMES:
        raise ConfigError(f"runtime={runtime} has no instruction model to calibrate; allowed: "
                          f"{', '.join(CALIBRATED_RUNTIMES)}")
    if instruction_model_for(mcu, runtime) is None or mcu.clock_mhz <= 0:
        cores = ("Cortex-M0/M0+ (ARMv6-M), M4, M7, M33 (DSP) or M55, M85 (MVE)" if runtime == "tflm" else
                 "Cortex-M4, M7 or M33 (TinyEngine's ARMv7E-M code)")
        raise ConfigError(f"mcu={mcu.name}: core {mcu.core} has no {runtime} instruction model; allowed: boards "
                          f"with a {cores} core")
    rows, points = [], []
    for key, model, ms in pairs(cfg):
        graph = load_graph(OmegaConf.merge(cfg, {"model": None, "arch": None, key: model}))
        table, instruction_model = table_of(graph), instruction_model_for(mcu, runtime)
        instructions = instruction_model.graph_instructions(table)
        fc = fully_connected_instructions(instruction_model, table) if runtime == "tflm" else 0  # see
        # estimators.latency.fully_connected_ratio: the FC ratio is TFLM's FC kernel's
        points.append((ms * 1e-3 * mcu.clock_mhz * 1e6, instructions, fc))
        rows.append({key: model, "instructions": int(round(instructions)), "measured_ms": ms,
                     "fully_connected_instructions": fc})
    cpi, ratio, loo = fit(points, fully_connected_ratio(mcu, runtime))
    for row, (cycles, n, fc), err in zip(rows, points, loo or [None] * len(rows)):
        row["cycles_per_instruction"] = cycles / (n + ((ratio or 1.0) - 1) * fc)
        if err is not None:
            row["leave_one_out_error"] = err
    override = f"mcu.cycles_per_instruction={round(cpi, 4)}"
    if ratio != fully_connected_ratio(mcu, runtime):  # fitted here
        override += f" mcu.fully_connected_cpi_ratio={round(ratio, 4)}"
    doc = {"mcu": mcu.name, "runtime": runtime, "clock_mhz": mcu.clock_mhz,
           "instructions": rows[0]["instructions"] if len(rows) == 1 else [r["instructions"] for r in rows],
           "measured_ms": rows[0]["measured_ms"] if len(rows) == 1 else [r["measured_ms"] for r in rows],
           "cycles_per_instruction": round(cpi, 4), "points": rows,
           "fully_connected_cpi_ratio": None if ratio is None else round(ratio, 4),
           "spread": {"min": min(r["cycles_per_instruction"] for r in rows),
                      "max": max(r["cycles_per_instruction"] for r in rows),
                      "leave_one_out_max_abs_error": max(map(abs, loo)) if loo else None},
           "override": override}
    if cfg.out:
        write_json(Path(cfg.out), doc)
    print(json.dumps(doc, indent=1) if cfg.format == "json" else text(doc), file=sys.stdout)
    return doc


def text(doc: dict) -> str:
    lines = [f"{'model':<40} {'instructions':>14} {'measured ms':>12} {'cycles/instr':>13} {'LOO err':>8}"]
    for r in doc["points"]:
        name = r.get("model") or r.get("arch")
        loo = r.get("leave_one_out_error")
        lines.append(f"{name[-40:]:<40} {r['instructions']:>14,} {r['measured_ms']:>12.3f} "
                     f"{r['cycles_per_instruction']:>13.4f} {'' if loo is None else f'{100 * loo:+7.1f}%':>8}")
    lines += ["", f"{doc['mcu']} ({doc['runtime']}, {doc['clock_mhz']:g} MHz): cycles_per_instruction "
              f"{doc['cycles_per_instruction']}" + ("" if doc["fully_connected_cpi_ratio"] is None else
                                                  f", FULLY_CONNECTED ops x {doc['fully_connected_cpi_ratio']}"),
              f"use it: {doc['override']}"]
    return "\n".join(lines)
