"""`tinynas estimate`: the estimators' figures for an arch spec, a named point or a model file, as a table or JSON."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from estimators import Estimate, estimate
from estimators.flash import with_model_file
from tinynas.commands.common import check_runtime, load_arch, load_mcu_cfg, load_space
from tinynas.errors import ConfigError
from tinynas.report import write_json

#: What executes the instructions each priced runtime counts.
ENGINES = {"tflm": "TFLM + CMSIS-NN", "tinyengine": "TinyEngine's generated code",
           "analytic": "TinyEngine's generated code"}


def load_graph(cfg):
    """The IR of ``arch=`` (a JSON arch spec; a named point as published: its space, input and classes; or a
    reference model of :mod:`estimators.reference_models` such as ``mlperf_ic_resnet8``, which no search space
    holds) or ``model=`` (a .tflite or .onnx file)."""
    from estimators.reference_models import REFERENCE_MODELS, reference_model
    from search_spaces.named import find, named_archs

    if (cfg.arch is None) == (cfg.model is None):
        raise ConfigError("give exactly one of arch=FILE.json or model=FILE.tflite|FILE.onnx (arch= also takes a named arch)")
    if cfg.arch is not None and (point := find(str(cfg.arch))) is not None:
        return point.to_ir()
    path = Path(cfg.arch or cfg.model)
    if cfg.arch is not None and not path.is_file() and str(cfg.arch) in REFERENCE_MODELS:
        return reference_model(str(cfg.arch))
    if not path.is_file():
        named = (f" and not a named arch ({', '.join(named_archs())}) or reference model "
                 f"({', '.join(REFERENCE_MODELS)})" if cfg.arch else "")
        raise ConfigError(f"{'arch' if cfg.arch else 'model'}={path}: no such file{named}")
    if cfg.arch is not None:
        space = load_space(cfg)
        arch = load_arch(cfg, space)
        return space.to_ir(arch, int(cfg.dataset.in_channels), int(cfg.dataset.num_classes))
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from estimators.tflite_reader import read_tflite

        return read_tflite(path)
    if suffix == ".onnx":
        from estimators.onnx_reader import read_onnx

        return read_onnx(path)
    raise ConfigError(f"model={path}: unsupported file type {suffix!r}; allowed: .tflite, .onnx")


def load_patch(patch):
    """``patch={patches: N, layers: L}`` (N × N patches over the first L conv layers) or None."""
    if patch is None:
        return None
    from estimators.patch import PatchConfig

    try:
        keys = set(patch.keys())
    except AttributeError:
        raise ConfigError(f"patch={patch!r}: give patch={{patches: N, layers: L}}") from None
    if keys != {"patches", "layers"}:
        raise ConfigError(f"patch= has keys {sorted(keys)}; allowed and required: patches, layers")
    try:
        return PatchConfig(int(patch["patches"]), int(patch["layers"]))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"patch={{patches: {patch['patches']}, layers: {patch['layers']}}}: {e}") from e


def kb(n: int) -> str:
    return f"{n / 1024:,.1f} kB"


LEGEND = ("kB = 1024 bytes. live: activation bytes held in SRAM while the layer runs (its inputs, outputs, "
          "tensors kept for later layers and kernel scratch, as the runtime plans them). A * after live marks the "
          "peak-memory layer, after ms the slowest layer.")


def table(est: Estimate, mcu=None) -> str:
    """The text report of ``est``; ``mcu`` (its board) tells which figures apply: without a clock there is no
    latency, without a power figure no energy, without budgets no verdict (printed as n/a)."""
    timed = mcu is None or mcu.clock_mhz > 0
    powered = timed and (mcu is None or mcu.active_power_mw > 0)
    layers = est.layers
    peak = est.peak_layer
    slow = max(range(len(layers)), key=lambda i: layers[i].latency_ms, default=None) if timed else None
    counted = est.instructions is not None
    rows = [LEGEND, "",
            f"{'#':>3}  {'layer':<28} {'op':<18} {'output':<16} {'MACs':>11} {'params':>9} {'live':>11} "
            + (f"{'instructions':>13} " if counted else "") + f"{'ms':>8}"]
    for i, l in enumerate(layers):
        ms = f"{l.latency_ms:>8.2f}{'*' if i == slow else ''}" if timed else f"{'n/a':>8}"
        rows.append(f"{i:>3}  {l.name[:28]:<28} {l.op:<18} {'x'.join(map(str, l.output_shape)):<16} "
                    f"{l.macs:>11,} {l.params:>9,} {kb(l.live_bytes):>10}{'*' if i == peak else ' '} "
                    + (f"{l.instructions:>13,.0f} " if counted else "") + ms)
    s, f = est.sram, est.flash

    def verdict(used: int, budget: int) -> str:
        if budget <= 0:
            return "(no budget)"
        return f"{100 * used / budget:5.1f}% of {kb(budget)}  {'fits' if used <= budget else 'DOES NOT FIT'}"

    model = "model file" if f.model_source == "file" else "model"
    no_clock = f"n/a ({est.mcu} has no clock)"
    rows += [
        "",
        f"model {est.model} on {est.mcu} ({est.runtime})",
        f"MACs        {est.macs:,}",
        f"params      {est.params:,}",
        f"SRAM        {kb(s.total_bytes)} = activations {kb(s.activation_bytes)} + persistent "
        f"{kb(s.persistent_bytes)}   {verdict(s.total_bytes, est.sram_budget_bytes)}",
        f"flash       {kb(f.total_bytes)} = {model} {kb(f.model_bytes)} + runtime {kb(f.runtime_bytes)}   "
        f"{verdict(f.total_bytes, est.flash_budget_bytes)}",
        *([f"            runtime code: {f.runtime_source}"] if "build for" in f.runtime_source else []),
        *([f"instructions {est.instructions:,.0f} ({ENGINES[est.runtime]}, one inference)"] if counted else []),
        f"latency     " + (f"{est.latency_ms:,.2f} ms" + (f" = {est.cycles:,.0f} cycles at {est_clock(est)}"
                                                         if est.cycles else "") if timed else no_clock),
        f"energy      {f'{est.energy_mj:,.3f} mJ' if powered else (no_clock if not timed else 'n/a (no power figure)')}",
        f"fits        {'n/a (no budget)' if est.fits is None else est.fits}",
    ]
    return "\n".join(rows)


def est_clock(est: Estimate) -> str:
    return f"{est.cycles / (est.latency_ms * 1e3):,.0f} MHz"


def run(cfg) -> Estimate:
    if cfg.format not in ("table", "json"):
        raise ConfigError(f"format={cfg.format!r} is unknown; allowed: table, json")
    patch = load_patch(cfg.patch)
    graph = load_graph(cfg)
    mcu = load_mcu_cfg(cfg)
    try:
        est = estimate(graph, mcu, check_runtime(cfg.runtime), patch=patch)
    except ValueError as e:
        if patch is None:
            raise
        raise ConfigError(f"patch={{patches: {patch.patches}, layers: {patch.layers}}}: {e}") from e
    if cfg.model is not None and Path(cfg.model).suffix.lower() == ".tflite":
        # A real .tflite is what goes into flash: its size, not the estimate from its graph.
        est = dataclasses.replace(est, flash=with_model_file(est.flash, Path(cfg.model).stat().st_size))
    doc = est.to_dict()
    if cfg.out:
        write_json(Path(cfg.out), doc)
    print(json.dumps(doc, indent=1) if cfg.format == "json" else table(est, mcu), file=sys.stdout)
    return est
