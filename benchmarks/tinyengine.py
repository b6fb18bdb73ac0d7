"""Emulate TinyEngine's generated code for MCUNet archs, fit its per-layer instruction model, check the published nets.

    python benchmarks/tinyengine.py --emulate   # export + TinyEngine firmware + QEMU: writes tinyengine_samples.csv
    python benchmarks/tinyengine.py             # fit on the random archs, report, write the model YAML

Ground truth: ``tinynas.target.tinyengine`` (TinyEngine's code generator and kernels, built for ARMv7E-M with the
FPU, run in qemu-system-arm mps2-an386 with the instruction-counting plugin). Each sample is one generated layer
(the facts of the TFLite op it came from, as the estimators read them, and its emulated instructions) plus one
``INVOKE`` row per model (invoke() minus its layer spans). The fit uses the random archs of the MCUNet space only;
the published nets (MCUNet's mcunet-5fps = mcunet-in1 and mbv2-w0.3-r80, as released: 3 channels, 1000 classes,
fresh weights) are held out and checked against the fit, then priced with the board's cycles per instruction
against their published STM32F746 latencies (``estimators/data/latency_calibration.csv``, runtime tinyengine).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/estimators.py would shadow the `estimators` package: keep this script's folder off the path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import csv
import datetime
import os
import random
import subprocess
import time

import numpy as np
import yaml

from estimators.instructions import ROW_FIELDS, facts_from_row, facts_row, fit_groups
from estimators.tinyengine_instructions import (ELEMENTWISE, FALLBACK, MODEL_YAML, SAMPLES, TinyEngineModel,
                                                generic_features, layer_facts, layer_features)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "third_party"
MCU = "stm32f746"  # the board of the published TinyEngine latencies (Cortex-M7: ARMv7E-M, as the emulated M4F)
SPACE_OPTIONS = {"resolutions": [64, 80, 96, 112], "widths": [0.3, 0.4, 0.5]}
FIT_SEEDS = tuple(range(1, 9))
PUBLISHED = {"mcunet-in1": "mcunet-5fps", "mbv2-w0.3-r80": "mbv2-w0.3-r80"}  # named arch → calibration csv name


def sources():
    from tinynas.target.sources import resolve

    root = os.environ.get("TINYNAS_TFLM_ROOT") or str(SHARED / "tflite-micro")
    downloads = os.environ.get("TINYNAS_TFLM_DOWNLOADS") or str(SHARED / "downloads")
    return resolve(root, downloads)


def _export(model, in_shape, seed: int, out: Path) -> Path:
    import torch  # noqa: F401  (the model is a torch module)

    from tinynas.export import export_model

    tflite = out / "model_int8.tflite"
    if not tflite.is_file():
        c, h, w = in_shape
        calib = np.random.default_rng(seed).standard_normal((8, c, h, w)).astype(np.float32)
        export_model(model, calib, out)
    return tflite


def export_random(seed: int, work: Path) -> Path:
    """A random arch of the MCUNet space (3 channels, 10 classes, seed ``seed``), exported with fresh weights."""
    import torch

    from search_spaces import get_space

    space = get_space("mcunet", SPACE_OPTIONS)
    arch = space.random(random.Random(seed))
    torch.manual_seed(seed)
    h, w, c = space.input_shape(arch, 3)
    return _export(space.build_torch(arch, 3, 10), (c, h, w), seed, work / f"mcunet-{seed}")


def export_published(name: str, work: Path) -> Path:
    """A named net as released (its input channels and classes), exported with fresh weights."""
    import torch

    from search_spaces.named import named_arch

    net = named_arch(name)
    torch.manual_seed(0)
    h, w, c = net.space().input_shape(net.spec(), net.in_channels)
    return _export(net.build_torch(), (c, h, w), 0, work / name)


def sample_rows(name: str, tflite: Path, report: dict) -> list[dict]:
    """One row per generated layer (the facts of its TFLite op + emulated instructions) and one INVOKE row."""
    from estimators.table import table_of
    from estimators.tflite_reader import read_tflite

    facts = layer_facts(table_of(read_tflite(tflite)).ops)
    layers = report["per_op"]
    if len(facts) != len(layers):
        raise RuntimeError(f"{name}: {len(facts)} TinyEngine layers expected, the firmware ran {len(layers)}")
    rows = [{"model": name, "index": p["index"], **facts_row(f), "instructions": p["instructions"]}
            for f, p in zip(facts, layers)]
    rows.append({"model": name, "index": len(layers), "kind": "INVOKE", "out_numel": len(layers),
                 "instructions": report["instructions"] - sum(p["instructions"] for p in layers)})
    return rows


def emulate_all(work: Path) -> tuple[list[dict], dict]:
    from estimators import load_mcu
    from tinynas.paths import MCU_DIR
    from tinynas.target.tinyengine import run_firmware

    src, mcu = sources(), load_mcu(MCU, MCU_DIR)
    rows, reports = [], {}
    jobs = [(f"mcunet-{s}", lambda s=s: export_random(s, work)) for s in FIT_SEEDS]
    jobs += [(n, lambda n=n: export_published(n, work)) for n in PUBLISHED]
    for name, export in jobs:
        t0 = time.monotonic()
        tflite = export()
        report = run_firmware(tflite, mcu, src)
        rows += sample_rows(name, tflite, report)
        reports[name] = {k: report[k] for k in ("instructions", "arena", "outputs_max_abs_diff",
                                                "outputs_max_abs_diff_prepared", "sections", "estimate")}
        write_samples(rows)  # after every model: an interrupted run keeps what it measured
        print(f"{name}: {len(report['per_op'])} layers, {report['instructions']:,} instructions, arena "
              f"{report['arena']['total']:,} B (tinyengine SRAM estimate {report['estimate']['sram_total_bytes']:,}), "
              f"outputs max |diff| {report['outputs_max_abs_diff']} (prepared model: "
              f"{report['outputs_max_abs_diff_prepared']}), "
              f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    (work / "reports.yaml").write_text(yaml.safe_dump(reports))
    return rows, reports


def write_samples(rows: list[dict], path: Path = SAMPLES) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["model", "index", *ROW_FIELDS, "instructions"], restval="")
        w.writeheader()
        w.writerows(rows)


def read_samples(path: Path = SAMPLES) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def fit(rows: list[dict]) -> dict:
    """Coefficients per TinyEngine kernel from the sample rows; prints each kernel's in-sample error."""
    by: dict[str, list[tuple[np.ndarray, float]]] = {}
    for r in rows:
        facts = facts_from_row(r)
        if facts is None:
            by.setdefault("INVOKE", []).append((np.array([1.0, float(r["out_numel"])]), float(r["instructions"])))
            continue
        kernel, x = layer_features(facts)
        y = float(r["instructions"])
        by.setdefault(kernel, []).append((np.asarray(x, float), y))
        if kernel.startswith("DEPTHWISE_CONV_2D/"):  # prices depthwise kernels (sizes, strides) no sample met
            by.setdefault("DEPTHWISE_CONV_2D", []).append((np.asarray(x, float), y))
        if kernel in ELEMENTWISE:  # the fallback for layer kinds no sample met
            by.setdefault(FALLBACK, []).append((np.asarray(generic_features(facts), float), y))
    coefs = {}
    for kernel, (coef, median, worst) in fit_groups(by).items():
        coefs[kernel] = coef
        print(f"{kernel:<28} n={len(by[kernel]):>4}  median {100 * median:5.2f}%  max {100 * worst:6.2f}%")
    return coefs


def provenance(src) -> dict:
    from tinynas.target import tinyengine
    from tinynas.target.sources import tool_version

    def commit(repo: Path, name: str) -> str:
        """The checkout's commit: git, else the snapshot table of the third_party README beside it."""
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
        readme = src.root.parent / "README.md"
        for line in (readme.read_text().splitlines() if readme.is_file() else []):
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 3 and cells[1].strip("`/") == name:
                return cells[3].split()[0]
        return "unknown"

    return {"tinyengine_commit": commit(tinyengine.resolve_root(src), "tinyengine"),
            "cmsis_nn_commit": commit(src.downloads / "cmsis_nn", "downloads/cmsis_nn"),
            "compiler": tool_version("arm-none-eabi-gcc"), "emulator": tool_version("qemu-system-arm"),
            "cflags": " ".join(tinyengine.CFLAGS), "board": "qemu-system-arm -M mps2-an386 (Cortex-M4, FPU on)",
            "codegen": "TinyEngine's GenerateSourceFilesFromTFlite (fp_requantize, in-place depthwise)"}


def published_check(model: TinyEngineModel, rows: list[dict]) -> None:
    """Emulated and modelled instructions of the published nets × the board's cycles per instruction vs published."""
    from estimators import load_mcu
    from tinynas.paths import MCU_DIR

    mcu = load_mcu(MCU, MCU_DIR)
    totals = model.sample_totals(rows)
    with open(ROOT / "estimators/data/latency_calibration.csv") as f:
        published = {r["model"].split(" (")[0]: r for r in csv.DictReader(f) if r["runtime"] == "tinyengine"}
    cpi = mcu.cycles_per_instruction
    print(f"\npublished TinyEngine latencies on {mcu.board} ({mcu.clock_mhz:g} MHz, cycles/instruction {cpi})")
    for name, row in ((n, published[p]) for n, p in PUBLISHED.items() if n in totals):
        emulated, predicted = totals[name]
        ms = float(row["latency_ms"])
        print(f"  {name:<16} emulated {emulated:>12,}  model {predicted:>12,} "
              f"({100 * (predicted / emulated - 1):+.2f}%)"
              f"  → {emulated * cpi / mcu.clock_mhz / 1e3:7.1f} ms vs published {ms:g} ms"
              f" ({100 * (emulated * cpi / mcu.clock_mhz / 1e3 / ms - 1):+.1f}%); implied cycles/instruction "
              f"{ms * mcu.clock_mhz * 1e3 / emulated:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--emulate", action="store_true", help="export and emulate the archs first")
    ap.add_argument("--work", default=None, help="folder for the exports (default: $TINYNAS_CACHE/tinyengine_bench)")
    ap.add_argument("--no-write", action="store_true", help="report only; do not write the model YAML")
    args = ap.parse_args()
    src = sources()
    if args.emulate:
        from tinynas.target.sources import cache_dir

        emulate_all(Path(args.work) if args.work else cache_dir() / "tinyengine_bench")
    rows = read_samples()
    fit_rows = [r for r in rows if r["model"] not in PUBLISHED]
    coefs = fit(fit_rows)
    doc = {"generated_by": "benchmarks/tinyengine.py", "generated_on": datetime.date.today().isoformat(),
           **provenance(src), "fitted_on": sorted({r["model"] for r in fit_rows}),
           "form": "instructions(layer) = coefficients[kernel] · layer_features(layer); "
                   "invoke adds INVOKE · [1, layers]",
           "coefficients": coefs}
    model = TinyEngineModel.from_dict(doc)
    print()
    for name, (total, pred) in sorted(model.sample_totals(rows).items()):
        tag = "held out" if name in PUBLISHED else "fit"
        print(f"{name:<18} {total:>13,} instructions  model {100 * (pred / total - 1):+6.2f}%  ({tag})")
    published_check(model, rows)
    if not args.no_write:
        with open(MODEL_YAML, "w") as f:
            f.write("# Generated by benchmarks/tinyengine.py; do not edit by hand.\n")
            yaml.safe_dump(doc, f, sort_keys=False, width=120)
        print(f"\nwrote {MODEL_YAML.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
